// Typed errors for raw quantized buffers (wrong sizes, types we cannot decode). File-level problems
// are the readers' `ModelFormatError`s, which name the file.

public struct QuantFormatError: Error, CustomStringConvertible, Sendable {
    public let type: GGMLType
    public let field: String
    public let expected: String
    public let found: String
    public let hint: String?

    public init(type: GGMLType, field: String, expected: String, found: String, hint: String? = nil) {
        self.type = type
        self.field = field
        self.expected = expected
        self.found = found
        self.hint = hint
    }

    public var description: String {
        var s = "\(type) \(field): expected \(expected), found \(found)"
        if let hint { s += " (hint: \(hint))" }
        return s
    }
}
