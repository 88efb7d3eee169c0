// Typed errors for model files: every one names the file, the field and what was expected.

public struct ModelFormatError: Error, CustomStringConvertible, Sendable {
    public let file: String
    public let field: String
    public let expected: String
    public let found: String
    public let hint: String?

    public init(file: String, field: String, expected: String, found: String, hint: String? = nil) {
        self.file = file
        self.field = field
        self.expected = expected
        self.found = found
        self.hint = hint
    }

    public var description: String {
        var s = "\(file): \(field): expected \(expected), found \(found)"
        if let hint { s += " (hint: \(hint))" }
        return s
    }
}
