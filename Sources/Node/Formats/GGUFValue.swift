// GGUF metadata values (`gguf_type`): the twelve scalar types, strings and (nested) arrays.

public indirect enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case float32(Float), bool(Bool), string(String), array([GGUFValue])
    case uint64(UInt64), int64(Int64), float64(Double)

    /// GGUF's numeric type ids.
    public enum TypeID: UInt32, Sendable {
        case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, bool = 7
        case string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12
    }

    /// Any integer type, widened; nil for non-integers (and UInt64 values beyond Int.max).
    public var int: Int? {
        switch self {
        case .uint8(let v): return Int(v)
        case .int8(let v): return Int(v)
        case .uint16(let v): return Int(v)
        case .int16(let v): return Int(v)
        case .uint32(let v): return Int(v)
        case .int32(let v): return Int(v)
        case .uint64(let v): return v <= UInt64(Int.max) ? Int(v) : nil
        case .int64(let v): return Int(v)
        default: return nil
        }
    }

    /// Any float or integer, as Double.
    public var double: Double? {
        switch self {
        case .float32(let v): return Double(v)
        case .float64(let v): return v
        default: return int.map(Double.init)
        }
    }

    public var string: String? { if case .string(let s) = self { return s } else { return nil } }
    public var bool: Bool? { if case .bool(let b) = self { return b } else { return nil } }
    public var array: [GGUFValue]? { if case .array(let a) = self { return a } else { return nil } }
}

/// Metadata of one GGUF file with typed look-ups that name the file and key when they fail.
public struct GGUFMetadata: Sendable {
    public let file: String
    public var values: [String: GGUFValue]
    /// Keys in file order (for printing and for copying metadata into a written file).
    public var keys: [String]

    public init(file: String, values: [String: GGUFValue], keys: [String]) {
        self.file = file
        self.values = values
        self.keys = keys
    }

    public subscript(key: String) -> GGUFValue? { values[key] }

    private func fail(_ key: String, _ expected: String) -> ModelFormatError {
        ModelFormatError(file: file, field: "metadata \(key)", expected: expected,
                         found: values[key].map { "\($0)".prefix(80).description } ?? "missing")
    }

    public func int(_ key: String) throws -> Int {
        guard let v = values[key]?.int else { throw fail(key, "an integer") }
        return v
    }
    public func double(_ key: String) throws -> Double {
        guard let v = values[key]?.double else { throw fail(key, "a number") }
        return v
    }
    public func string(_ key: String) throws -> String {
        guard let v = values[key]?.string else { throw fail(key, "a string") }
        return v
    }
    public func bool(_ key: String) throws -> Bool {
        guard let v = values[key]?.bool else { throw fail(key, "a bool") }
        return v
    }
    public func stringArray(_ key: String) throws -> [String] {
        guard let a = values[key]?.array else { throw fail(key, "an array of strings") }
        return try a.map { guard let s = $0.string else { throw fail(key, "an array of strings") }; return s }
    }
    public func doubleArray(_ key: String) throws -> [Double] {
        guard let a = values[key]?.array else { throw fail(key, "an array of numbers") }
        return try a.map { guard let d = $0.double else { throw fail(key, "an array of numbers") }; return d }
    }
    public func intArray(_ key: String) throws -> [Int] {
        guard let a = values[key]?.array else { throw fail(key, "an array of integers") }
        return try a.map { guard let d = $0.int else { throw fail(key, "an array of integers") }; return d }
    }
}
