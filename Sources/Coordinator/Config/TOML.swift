// A strict reader for the subset of TOML 1.0 that job files use: comments, `[table]` and dotted `[a.b]`
// headers, `key = value` with basic ("…", escapes) and literal ('…') strings, integers (decimal with `_`,
// 0x / 0o / 0b), floats (inf and nan included), booleans, and arrays of those. Not here: multi-line
// strings, dates and times, inline tables, arrays of tables, dotted keys. Each of those is refused by name
// with its file, line and column, so a job file is never half-read; a document this reader accepts
// means what Python's `tomllib` says it means (Tests/Python/toml_to_json.py cross-checks it).
import Foundation

/// A value in a TOML document.
public indirect enum TOMLValue: Equatable, Sendable {
    case string(String)
    case integer(Int64)
    case float(Double)
    case bool(Bool)
    case array([TOMLValue])
    case table(TOMLTable)

    /// The TOML spec's name of the value's type, for error messages ("expected a boolean, found an integer").
    public var typeName: String {
        switch self {
        case .string: return "a string"
        case .integer: return "an integer"
        case .float: return "a float"
        case .bool: return "a boolean"
        case .array: return "an array"
        case .table: return "a table"
        }
    }
}

/// Where something is in a file: 1-based line and column (the column counts Unicode scalars).
public struct TOMLPosition: Equatable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int
    public init(file: String, line: Int, column: Int) { self.file = file; self.line = line; self.column = column }
    public var description: String { "\(file):\(line):\(column)" }
}

/// A table: its keys in the order they were defined, each with the position of its definition (errors about
/// a key, e.g. an unknown option, point there).
public struct TOMLTable: Equatable, Sendable {
    public private(set) var keys: [String] = []
    private var values: [String: TOMLValue] = [:]
    private var positions: [String: TOMLPosition] = [:]
    /// The table's header, or for the root table and implicit tables the first place they were used.
    public internal(set) var position: TOMLPosition?

    public init() {}

    public subscript(key: String) -> TOMLValue? { values[key] }
    public func position(of key: String) -> TOMLPosition? { positions[key] }

    mutating func set(_ key: String, _ value: TOMLValue, at position: TOMLPosition) {
        if values[key] == nil { keys.append(key) }
        values[key] = value
        positions[key] = position
    }

    /// Equal keys and values; positions are where, not what.
    public static func == (a: TOMLTable, b: TOMLTable) -> Bool { a.keys == b.keys && a.values == b.values }
}

/// A document that is not TOML (or uses a part of TOML this reader leaves out), with where and why.
public struct TOMLError: Error, Equatable, Sendable, CustomStringConvertible {
    public let position: TOMLPosition
    /// What was expected and what was found, in the TOML spec's words where it has them.
    public let message: String
    public var description: String { "\(position): \(message)" }
}

public enum TOML {
    /// Parses a document. `file` names it in errors.
    public static func parse(_ text: String, file: String = "<string>") throws -> TOMLTable {
        var p = TOMLParser(text: text, file: file)
        return try p.document()
    }

    /// Reads and parses a UTF-8 file.
    public static func parse(contentsOf path: String) throws -> TOMLTable {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TOMLError(position: TOMLPosition(file: path, line: 0, column: 0),
                            message: "cannot read the file (does it exist, and is it readable?)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw TOMLError(position: TOMLPosition(file: path, line: 1, column: 1),
                            message: "a TOML file must be valid UTF-8")
        }
        return try parse(text, file: path)
    }
}

/// The tables while parsing: a class tree, so `[a.b]` can extend a table defined earlier; frozen into
/// `TOMLTable` values at the end.
private final class TableNode {
    var order: [String] = []
    var values: [String: TOMLValue] = [:]
    var tables: [String: TableNode] = [:]
    var positions: [String: TOMLPosition] = [:]
    /// Defined by its own header (a second header for it is an error), rather than implied by `[a.b]`.
    var explicit = false
    var position: TOMLPosition?

    func freeze() -> TOMLTable {
        var t = TOMLTable()
        t.position = position
        for k in order {
            if let v = values[k] { t.set(k, v, at: positions[k]!) } else { t.set(k, .table(tables[k]!.freeze()), at: positions[k]!) }
        }
        return t
    }
}

private struct TOMLParser {
    let s: [Unicode.Scalar]
    let file: String
    var i = 0

    init(text: String, file: String) {
        // As tomllib does: CRLF is a newline; a lone CR is then a control character and refused.
        self.s = Array(text.replacingOccurrences(of: "\r\n", with: "\n").unicodeScalars)
        self.file = file
    }

    var atEnd: Bool { i >= s.count }
    var peek: Unicode.Scalar? { i < s.count ? s[i] : nil }
    func peek(_ k: Int) -> Unicode.Scalar? { i + k < s.count ? s[i + k] : nil }

    func position(_ at: Int) -> TOMLPosition {
        var line = 1, col = 1
        for j in 0..<min(at, s.count) {
            if s[j] == "\n" { line += 1; col = 1 } else { col += 1 }
        }
        return TOMLPosition(file: file, line: line, column: col)
    }

    func fail(_ message: String, at: Int? = nil) -> TOMLError { TOMLError(position: position(at ?? i), message: message) }

    /// What is at the cursor, for "found …" in messages.
    func found(_ at: Int? = nil) -> String {
        let j = at ?? i
        guard j < s.count else { return "end of file" }
        let c = s[j]
        if c == "\n" { return "end of line" }
        if isControl(c) { return "control character U+\(String(format: "%04X", c.value))" }
        return "'\(Character(c))'"
    }

    func isControl(_ c: Unicode.Scalar) -> Bool { (c.value < 0x20 && c != "\t") || c.value == 0x7F }
    static func isBare(_ c: Unicode.Scalar) -> Bool {
        ("a"..."z").contains(c) || ("A"..."Z").contains(c) || ("0"..."9").contains(c) || c == "_" || c == "-"
    }

    mutating func skipSpaces() { while let c = peek, c == " " || c == "\t" { i += 1 } }

    /// A comment runs to the end of the line; control characters other than tab are not allowed in it.
    mutating func skipComment() throws {
        guard peek == "#" else { return }
        while let c = peek, c != "\n" {
            if isControl(c) { throw fail("control characters other than tab are not permitted in comments, found \(found())") }
            i += 1
        }
    }

    /// After a header or key/value pair: spaces, an optional comment, then a newline or the end of file.
    mutating func endOfLine(after what: String) throws {
        skipSpaces()
        try skipComment()
        if atEnd { return }
        guard peek == "\n" else { throw fail("expected a newline or end of file after \(what), found \(found())") }
        i += 1
    }

    mutating func document() throws -> TOMLTable {
        let root = TableNode()
        root.explicit = true
        var current = root
        var currentName = "the root table"
        while true {
            skipSpaces()
            guard let c = peek else { break }
            if c == "\n" { i += 1; continue }
            if c == "#" { try endOfLine(after: "a comment"); continue }
            if c == "[" {
                let start = i
                if peek(1) == "[" {
                    throw fail("arrays of tables ([[name]]) are not supported by this reader; use one [table] per section")
                }
                i += 1
                let path = try keyPath(end: "]")
                current = try defineTable(root: root, path: path, at: start)
                currentName = "[\(path.joined(separator: "."))]"
                try endOfLine(after: "a table header")
                continue
            }
            let start = i
            let k = try key()
            skipSpaces()
            if peek == "." { throw fail("dotted keys (a.b = …) are not supported by this reader; put the key under a [table] header") }
            guard peek == "=" else { throw fail("expected '=' after the key '\(k)', found \(found())") }
            i += 1
            skipSpaces()
            if atEnd || peek == "\n" || peek == "#" { throw fail("unspecified values are invalid: expected a value after '=', found \(found())") }
            let v = try value()
            if let first = current.positions[k] {
                throw fail("defining a key multiple times is invalid: '\(k)' in \(currentName) is already defined at line \(first.line)", at: start)
            }
            current.order.append(k)
            current.values[k] = v
            current.positions[k] = position(start)
            try endOfLine(after: "a key/value pair")
        }
        return root.freeze()
    }

    /// `[a.b.c]`: walks from the root, creating implicit tables; the last one must not have been defined by a
    /// header before, and no part may be a value.
    mutating func defineTable(root: TableNode, path: [String], at start: Int) throws -> TableNode {
        var node = root
        for (n, part) in path.enumerated() {
            let name = "[" + path[...n].joined(separator: ".") + "]"
            if node.values[part] != nil {
                throw fail("cannot define table \(name): '\(part)' is already a value (line \(node.positions[part]!.line))", at: start)
            }
            if let next = node.tables[part] {
                node = next
                if n == path.count - 1 {
                    if next.explicit {
                        throw fail("you cannot define a table more than once: \(name) is already defined at line \(next.position!.line)", at: start)
                    }
                    next.explicit = true
                    next.position = position(start)
                }
            } else {
                let t = TableNode()
                t.position = position(start)
                t.explicit = n == path.count - 1
                node.order.append(part)
                node.tables[part] = t
                node.positions[part] = position(start)
                node = t
            }
        }
        return node
    }

    /// `a . "b" . 'c'` up to `end` (consumed).
    mutating func keyPath(end: Unicode.Scalar) throws -> [String] {
        var parts: [String] = []
        while true {
            skipSpaces()
            parts.append(try key())
            skipSpaces()
            if peek == "." { i += 1; continue }
            guard peek == end else { throw fail("expected '.' or '\(end)' in a table header, found \(found())") }
            i += 1
            return parts
        }
    }

    /// A bare key (A-Za-z0-9_-) or a quoted one.
    mutating func key() throws -> String {
        guard let c = peek else { throw fail("expected a key, found end of file") }
        if c == "\"" || c == "'" {
            if peek(1) == c && peek(2) == c { throw fail("multi-line strings cannot be keys") }
            return c == "\"" ? try basicString() : try literalString()
        }
        let start = i
        while let c = peek, Self.isBare(c) { i += 1 }
        guard i > start else {
            throw fail("expected a key (bare keys are made of A-Za-z0-9, '_' and '-'; others must be quoted), found \(found())")
        }
        return String(String.UnicodeScalarView(s[start..<i]))
    }

    mutating func value() throws -> TOMLValue {
        guard let c = peek else { throw fail("expected a value, found end of file") }
        switch c {
        case "\"":
            if peek(1) == "\"" && peek(2) == "\"" { throw fail("multi-line strings (\"\"\"…\"\"\") are not supported by this reader; write the string on one line with \\n escapes") }
            return .string(try basicString())
        case "'":
            if peek(1) == "'" && peek(2) == "'" { throw fail("multi-line literal strings ('''…''') are not supported by this reader; write the string on one line") }
            return .string(try literalString())
        case "[": return try array()
        case "{": throw fail("inline tables ({ … }) are not supported by this reader; use a [table] header")
        default: return try scalarToken()
        }
    }

    mutating func array() throws -> TOMLValue {
        i += 1  // [
        var out: [TOMLValue] = []
        while true {
            try skipArrayGap()
            if peek == "]" { i += 1; return .array(out) }
            if peek == "," { throw fail("expected a value or ']' in an array, found ','") }
            out.append(try value())
            try skipArrayGap()
            if peek == "," { i += 1; continue }
            if peek == "]" { i += 1; return .array(out) }
            throw fail("expected ',' or ']' after an array element, found \(found())")
        }
    }

    /// Inside arrays, newlines and comments may separate elements.
    mutating func skipArrayGap() throws {
        while true {
            skipSpaces()
            if peek == "#" { try skipComment() }
            if peek == "\n" { i += 1; continue }
            return
        }
    }

    mutating func basicString() throws -> String {
        i += 1  // "
        var out = String.UnicodeScalarView()
        while true {
            guard let c = peek else { throw fail("unterminated basic string: expected '\"', found end of file") }
            if c == "\"" { i += 1; return String(out) }
            if c == "\n" { throw fail("a basic string must end on its line: expected '\"', found end of line") }
            if isControl(c) { throw fail("control characters other than tab are not permitted in a basic string (escape them as \\uXXXX), found \(found())") }
            if c != "\\" { out.append(c); i += 1; continue }
            let escStart = i
            i += 1
            guard let e = peek else { throw fail("unterminated basic string: expected an escape after '\\', found end of file") }
            i += 1
            switch e {
            case "b": out.append("\u{08}")
            case "t": out.append("\t")
            case "n": out.append("\n")
            case "f": out.append("\u{0C}")
            case "r": out.append("\r")
            case "\"": out.append("\"")
            case "\\": out.append("\\")
            case "u", "U":
                let n = e == "u" ? 4 : 8
                var v: UInt32 = 0
                for _ in 0..<n {
                    guard let h = peek, let d = hexDigit(h) else {
                        throw fail("invalid escape: \\\(e) needs \(n) hex digits, found \(found())")
                    }
                    v = v &* 16 &+ d
                    i += 1
                }
                guard let scalar = Unicode.Scalar(v) else {
                    throw fail("invalid escape: U+\(String(format: "%04X", v)) is not a Unicode scalar value", at: escStart)
                }
                out.append(scalar)
            default:
                throw fail("invalid escape '\\\(Character(e))': the escapes are \\b \\t \\n \\f \\r \\\" \\\\ \\uXXXX \\UXXXXXXXX", at: escStart)
            }
        }
    }

    func hexDigit(_ c: Unicode.Scalar) -> UInt32? {
        switch c {
        case "0"..."9": return c.value - 48
        case "a"..."f": return c.value - 97 + 10
        case "A"..."F": return c.value - 65 + 10
        default: return nil
        }
    }

    mutating func literalString() throws -> String {
        i += 1  // '
        let start = i
        while true {
            guard let c = peek else { throw fail("unterminated literal string: expected \"'\", found end of file") }
            if c == "'" { i += 1; return String(String.UnicodeScalarView(s[start..<(i - 1)])) }
            if c == "\n" { throw fail("a literal string must end on its line: expected \"'\", found end of line") }
            if isControl(c) { throw fail("control characters other than tab are not permitted in a literal string, found \(found())") }
            i += 1
        }
    }

    /// Booleans, numbers, inf / nan: one token of [A-Za-z0-9_+-.:], classified.
    mutating func scalarToken() throws -> TOMLValue {
        let start = i
        while let c = peek, Self.isBare(c) || c == "+" || c == "." || c == ":" { i += 1 }
        let tok = String(String.UnicodeScalarView(s[start..<i]))
        guard !tok.isEmpty else {
            throw fail("expected a value (string, integer, float, boolean or array), found \(found())")
        }
        if tok == "true" { return .bool(true) }
        if tok == "false" { return .bool(false) }
        if let v = try number(tok, at: start) { return v }
        if tok.range(of: #"^\d{4}-\d{2}-\d{2}"#, options: .regularExpression) != nil
            || tok.range(of: #"^\d{2}:\d{2}"#, options: .regularExpression) != nil {
            throw fail("dates and times are not supported by this reader; quote the value as a string", at: start)
        }
        throw fail("expected a value (string, integer, float, boolean or array), found '\(tok)'", at: start)
    }

    /// Digits with single underscores between them ("1_000"); nil if `t` is not that.
    func digits(_ t: Substring, allowed: (Character) -> Bool, at: Int) throws -> String? {
        guard let f = t.first, let l = t.last, allowed(f), allowed(l) else {
            if t.first == "_" || t.last == "_" {
                throw fail("each underscore must be surrounded by at least one digit on each side", at: at)
            }
            return nil
        }
        var out = "", prevUnderscore = false
        for ch in t {
            if ch == "_" {
                if prevUnderscore { throw fail("each underscore must be surrounded by at least one digit on each side", at: at) }
                prevUnderscore = true
                continue
            }
            guard allowed(ch) else { return nil }
            prevUnderscore = false
            out.append(ch)
        }
        return out
    }

    func number(_ tok: String, at start: Int) throws -> TOMLValue? {
        var body = Substring(tok)
        var sign = ""
        if let f = body.first, f == "+" || f == "-" { sign = f == "-" ? "-" : ""; body = body.dropFirst() }
        if body == "inf" { return .float(sign == "-" ? -.infinity : .infinity) }
        if body == "nan" { return .float(sign == "-" ? -.nan : .nan) }
        let dec: (Character) -> Bool = { $0.isASCII && $0.isNumber }
        // 0x / 0o / 0b: no sign allowed.
        for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] where body.hasPrefix(prefix) {
            guard sign.isEmpty && tok.first != "+" else { throw fail("a sign is not allowed before \(prefix) integers", at: start) }
            let allowed: (Character) -> Bool = { $0.isASCII && $0.hexDigitValue.map { $0 < radix } == true }
            guard let d = try digits(body.dropFirst(2), allowed: allowed, at: start) else {
                throw fail("expected base-\(radix) digits after \(prefix), found '\(tok)'", at: start)
            }
            guard let v = Int64(d, radix: radix) else { throw fail("integer \(tok) does not fit in 64 bits", at: start) }
            return .integer(v)
        }
        // Decimal: int part, optional .frac, optional exponent.
        var intPart = body, frac: Substring?, exp: Substring?
        if let e = body.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            intPart = body[..<e]
            exp = body[body.index(after: e)...]
        }
        if let dot = intPart.firstIndex(of: ".") {
            frac = intPart[intPart.index(after: dot)...]
            intPart = intPart[..<dot]
        }
        guard let ip = try digits(intPart, allowed: dec, at: start) else { return nil }
        if ip.count > 1 && ip.first == "0" { throw fail("leading zeros are not allowed: '\(tok)'", at: start) }
        if frac == nil && exp == nil {
            guard let v = Int64(sign + ip) else { throw fail("integer \(tok) does not fit in 64 bits", at: start) }
            return .integer(v)
        }
        var text = sign + ip
        if let f = frac {
            guard let fd = try digits(f, allowed: dec, at: start) else {
                throw fail("a decimal point must be followed by at least one digit: '\(tok)'", at: start)
            }
            text += "." + fd
        }
        if var e = exp {
            var esign = ""
            if let f = e.first, f == "+" || f == "-" { esign = String(f); e = e.dropFirst() }
            guard let ed = try digits(e, allowed: dec, at: start) else {
                throw fail("an exponent must be digits: '\(tok)'", at: start)
            }
            text += "e" + esign + ed
        }
        guard let v = Double(text) else { return nil }
        return .float(v)
    }
}
