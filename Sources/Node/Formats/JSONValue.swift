// A parsed JSON document as a plain value, and typed field lookups that throw `ModelFormatError`
// naming the file and the key. Used for safetensors headers, index files and config.json; not a writer.
import Foundation

/// Any JSON value. Numbers that are integers in the text decode as `.int`; others as `.double`.
public enum JSONValue: Sendable, Equatable, Decodable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null; return }
        if let b = try? c.decode(Bool.self) { self = .bool(b); return }
        if let i = try? c.decode(Int.self) { self = .int(i); return }
        if let d = try? c.decode(Double.self) { self = .double(d); return }
        if let s = try? c.decode(String.self) { self = .string(s); return }
        if let a = try? c.decode([JSONValue].self) { self = .array(a); return }
        self = .object(try c.decode([String: JSONValue].self))
    }

    /// Parses `data`; a syntax error becomes a `ModelFormatError` naming `file` and `field`.
    public static func parse(_ data: Data, file: String, field: String) throws -> JSONValue {
        do {
            return try JSONDecoder().decode(JSONValue.self, from: data)
        } catch {
            throw ModelFormatError(file: file, field: field, expected: "valid UTF-8 JSON",
                                   found: "a parse error (\(Self.describe(error)))",
                                   hint: "the file is truncated or not JSON")
        }
    }

    private static func describe(_ e: Error) -> String {
        if case DecodingError.dataCorrupted(let ctx) = e {
            return ctx.underlyingError.map { "\($0)" } ?? ctx.debugDescription
        }
        return "\(e)"
    }

    /// A short name of the JSON kind, for error messages.
    public var kind: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return "boolean \(b)"
        case .int(let i): return "integer \(i)"
        case .double(let d): return "number \(d)"
        case .string(let s): return "string \"\(s.prefix(60))\""
        case .array(let a): return "an array of \(a.count)"
        case .object: return "an object"
        }
    }
}

/// A JSON object with the file it came from, for lookups whose errors name file and key.
/// `context` prefixes field names (e.g. `tensor model.norm.weight`).
public struct JSONFields {
    public let fields: [String: JSONValue]
    public let file: String
    public let context: String

    public init(_ value: JSONValue, file: String, context: String = "") throws {
        guard case .object(let o) = value else {
            throw ModelFormatError(file: file, field: context.isEmpty ? "top level" : context,
                                   expected: "a JSON object", found: value.kind)
        }
        self.fields = o
        self.file = file
        self.context = context
    }

    func field(_ key: String) -> String { context.isEmpty ? key : "\(context) \(key)" }

    func fail(_ key: String, _ expected: String, _ found: String, hint: String? = nil) -> ModelFormatError {
        ModelFormatError(file: file, field: field(key), expected: expected, found: found, hint: hint)
    }

    /// The value at `key`, with JSON `null` treated as absent.
    public func optional(_ key: String) -> JSONValue? {
        guard let v = fields[key], v != .null else { return nil }
        return v
    }

    public func require(_ key: String) throws -> JSONValue {
        guard let v = optional(key) else {
            throw fail(key, "the key to be present", "no such key", hint: "add \"\(key)\" to \(file)")
        }
        return v
    }

    public func int(_ key: String) throws -> Int { try Self.int(try require(key), self, key) }
    public func optionalInt(_ key: String) throws -> Int? { try optional(key).map { try Self.int($0, self, key) } }

    public func double(_ key: String) throws -> Double { try Self.double(try require(key), self, key) }
    public func optionalDouble(_ key: String) throws -> Double? {
        try optional(key).map { try Self.double($0, self, key) }
    }

    public func string(_ key: String) throws -> String { try Self.string(try require(key), self, key) }
    public func optionalString(_ key: String) throws -> String? {
        try optional(key).map { try Self.string($0, self, key) }
    }

    public func optionalBool(_ key: String) throws -> Bool? {
        guard let v = optional(key) else { return nil }
        guard case .bool(let b) = v else { throw fail(key, "true or false", v.kind) }
        return b
    }

    public func array(_ key: String) throws -> [JSONValue] {
        let v = try require(key)
        guard case .array(let a) = v else { throw fail(key, "an array", v.kind) }
        return a
    }

    public func object(_ key: String) throws -> JSONFields {
        try JSONFields(try require(key), file: file, context: field(key))
    }

    static func int(_ v: JSONValue, _ f: JSONFields, _ key: String) throws -> Int {
        switch v {
        case .int(let i): return i
        case .double(let d) where d == d.rounded() && abs(d) < 9e15: return Int(d)
        default: throw f.fail(key, "an integer", v.kind)
        }
    }

    static func double(_ v: JSONValue, _ f: JSONFields, _ key: String) throws -> Double {
        switch v {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: throw f.fail(key, "a number", v.kind)
        }
    }

    static func string(_ v: JSONValue, _ f: JSONFields, _ key: String) throws -> String {
        guard case .string(let s) = v else { throw f.fail(key, "a string", v.kind) }
        return s
    }
}
