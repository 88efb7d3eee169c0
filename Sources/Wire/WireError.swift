// The one error type of the Wire module: which field, what was expected, what was found.

/// A wire message or payload that cannot be decoded (or a message that cannot be built).
/// `field` names the header field or codec stage; `expected` and `found` are human-readable.
public struct WireError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Reason: String, Sendable, Equatable {
        case truncated          // fewer bytes than a field or the payload needs
        case badMagic           // not a wire message at all
        case unsupportedVersion // a version this build does not read
        case unknownValue       // an enum byte (kind, dtype, codec) with no meaning here
        case sizeMismatch       // lengths that disagree with each other or with the shape
        case checksumMismatch   // CRC32C of the header or payload differs
        case tooLarge           // over the global cap or an overflow in a size product
        case trailingBytes      // bytes after the end of the payload
        case corruptPayload     // the codec could not decode the payload (bad zstd frame, ...)
        case invalidArgument    // a message that cannot be built (encoder side)
    }

    public let reason: Reason
    public let field: String
    public let expected: String
    public let found: String

    public init(_ reason: Reason, field: String, expected: String, found: String) {
        self.reason = reason
        self.field = field
        self.expected = expected
        self.found = found
    }

    public var description: String {
        "wire message: \(reason.rawValue) in \(field): expected \(expected), found \(found)"
    }
}
