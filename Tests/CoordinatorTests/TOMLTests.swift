import Foundation
import Testing
import TestSupport
@testable import Coordinator

/// The job-file TOML reader: exact small cases, every error path, and agreement with Python's tomllib.
@Suite struct TOMLTests {
    func parse(_ s: String) throws -> TOMLTable { try TOML.parse(s, file: "t.toml") }

    /// The error a document gives: `line:column: message`, checked by the test.
    func error(_ s: String) -> TOMLError? {
        do { _ = try parse(s); return nil } catch let e as TOMLError { return e } catch { return nil }
    }

    func expectError(_ s: String, line: Int, column: Int, _ contains: String, sourceLocation: SourceLocation = #_sourceLocation) {
        guard let e = error(s) else {
            Issue.record("no error for \(s.debugDescription)", sourceLocation: sourceLocation)
            return
        }
        #expect(e.position.file == "t.toml" && e.position.line == line && e.position.column == column,
                "\(e) (wanted \(line):\(column))", sourceLocation: sourceLocation)
        #expect(e.message.contains(contains), "\(e)", sourceLocation: sourceLocation)
        #expect("\(e)".hasPrefix("t.toml:\(line):\(column): "), sourceLocation: sourceLocation)
    }

    @Test func scalars() throws {
        let t = try parse("""
            # a comment
            s = "a\\tb\\"c\\\\ \\u00e9\\U0001F600\\n"   # trailing comment
            lit = 'C:\\path\\no escapes "here"'
            empty = ""
            i = 1_000
            neg = -17
            pos = +3
            zero = 0
            hex = 0xdead_BEEF
            oct = 0o755
            bin = 0b1101
            f = 3.25
            e = -1e-3
            E = 6.02E+23
            u = 1_0.2_5
            inf = -inf
            nan = nan
            yes = true
            no = false
            "quoted key" = 1
            'lit key' = 2
            1234 = "bare digits are a key"
            """)
        #expect(t["s"] == .string("a\tb\"c\\ é😀\n"))
        #expect(t["lit"] == .string(#"C:\path\no escapes "here""#))
        #expect(t["empty"] == .string(""))
        #expect(t["i"] == .integer(1000) && t["neg"] == .integer(-17) && t["pos"] == .integer(3) && t["zero"] == .integer(0))
        #expect(t["hex"] == .integer(0xdeadbeef) && t["oct"] == .integer(0o755) && t["bin"] == .integer(13))
        #expect(t["f"] == .float(3.25) && t["e"] == .float(-0.001) && t["E"] == .float(6.02e23) && t["u"] == .float(10.25))
        #expect(t["inf"] == .float(-.infinity))
        if case .float(let x) = t["nan"] { #expect(x.isNaN) } else { Issue.record("nan: \(String(describing: t["nan"]))") }
        #expect(t["yes"] == .bool(true) && t["no"] == .bool(false))
        #expect(t["quoted key"] == .integer(1) && t["lit key"] == .integer(2) && t["1234"] == .string("bare digits are a key"))
        #expect(t.keys.first == "s" && t.keys.count == 21)
        #expect(t.position(of: "lit") == TOMLPosition(file: "t.toml", line: 3, column: 1))
    }

    @Test func tablesAndArrays() throws {
        let t = try parse("""
            top = 1
            [model]
            path = "m.gguf"
            [ mixed . sub ]
            pins = [ "a=Q8_0",
                     'b=Q4_0',  # comment inside
                   ]
            nested = [[1, 2], [], ["x", 1.5, true]]
            [mixed]
            target_bpw = 5.0\r
            x = 1
            """)
        #expect(t.keys == ["top", "model", "mixed"])
        guard case .table(let model) = t["model"], case .table(let mixed) = t["mixed"], case .table(let sub) = mixed["sub"] else {
            Issue.record("tables: \(t)")
            return
        }
        #expect(model["path"] == .string("m.gguf"))
        #expect(sub["pins"] == .array([.string("a=Q8_0"), .string("b=Q4_0")]))
        #expect(sub["nested"] == .array([.array([.integer(1), .integer(2)]), .array([]), .array([.string("x"), .float(1.5), .bool(true)])]))
        #expect(mixed["target_bpw"] == .float(5) && mixed["x"] == .integer(1))  // CRLF is a newline
        // [mixed] was implied by [mixed.sub] first, so defining it afterwards is allowed; its position is its header.
        #expect(mixed.position?.line == 9 && model.position?.line == 2)
        #expect(try parse("") == TOMLTable() && parse("\n# only\n\n") == TOMLTable())
    }

    @Test func everyErrorNamesLineColumnAndWhat() {
        expectError("a = 1\nb = 2 3\n", line: 2, column: 7, "expected a newline or end of file after a key/value pair, found '3'")
        expectError("a 1", line: 1, column: 3, "expected '=' after the key 'a', found '1'")
        expectError("a =\n", line: 1, column: 4, "unspecified values are invalid")
        expectError("a = # c", line: 1, column: 5, "unspecified values are invalid")
        expectError("= 1", line: 1, column: 1, "expected a key")
        expectError("a.b = 1", line: 1, column: 2, "dotted keys")
        expectError("a = 1\na = 2", line: 2, column: 1, "defining a key multiple times is invalid: 'a' in the root table is already defined at line 1")
        expectError("[t]\n[t]", line: 2, column: 1, "you cannot define a table more than once: [t] is already defined at line 1")
        expectError("[t]\nx = 1\n[t.x]", line: 3, column: 1, "cannot define table [t.x]: 'x' is already a value (line 2)")
        expectError("[t.x]\n[t]\nx = 1", line: 3, column: 1, "defining a key multiple times is invalid: 'x' in [t]")
        expectError("[[t]]", line: 1, column: 1, "arrays of tables")
        expectError("[t", line: 1, column: 3, "expected '.' or ']' in a table header, found end of file")
        expectError("[]", line: 1, column: 2, "expected a key")
        expectError("[t] x = 1", line: 1, column: 5, "expected a newline or end of file after a table header, found 'x'")
        expectError("a = {b = 1}", line: 1, column: 5, "inline tables")
        expectError("a = \"\"\"x\"\"\"", line: 1, column: 5, "multi-line strings")
        expectError("a = '''x'''", line: 1, column: 5, "multi-line literal strings")
        expectError("a = \"abc", line: 1, column: 9, "unterminated basic string")
        expectError("a = \"abc\nb = 1", line: 1, column: 9, "a basic string must end on its line")
        expectError("a = 'abc", line: 1, column: 9, "unterminated literal string")
        expectError("a = 'abc\n'", line: 1, column: 9, "a literal string must end on its line")
        expectError("a = \"x\\qy\"", line: 1, column: 7, "invalid escape '\\q'")
        expectError("a = \"\\u12G4\"", line: 1, column: 10, "\\u needs 4 hex digits, found 'G'")
        expectError("a = \"\\uD800\"", line: 1, column: 6, "U+D800 is not a Unicode scalar value")
        expectError("a = \"\\", line: 1, column: 7, "expected an escape")
        expectError("a = \"x\u{01}\"", line: 1, column: 7, "control characters other than tab are not permitted in a basic string")
        expectError("a = 'x\u{7F}'", line: 1, column: 7, "control characters other than tab are not permitted in a literal string")
        expectError("# x\u{00}y", line: 1, column: 4, "control characters other than tab are not permitted in comments")
        expectError("a = 1\r\nb = 2\rc = 3", line: 2, column: 6, "found control character U+000D")
        expectError("a = 01", line: 1, column: 5, "leading zeros are not allowed")
        expectError("a = 00.5", line: 1, column: 5, "leading zeros are not allowed")
        expectError("a = 1__0", line: 1, column: 5, "each underscore must be surrounded by at least one digit")
        expectError("a = _1", line: 1, column: 5, "each underscore must be surrounded")
        expectError("a = 1_", line: 1, column: 5, "each underscore must be surrounded")
        expectError("a = 1.", line: 1, column: 5, "a decimal point must be followed by at least one digit")
        expectError("a = 1e", line: 1, column: 5, "an exponent must be digits")
        expectError("a = .5", line: 1, column: 5, "expected a value (string, integer, float, boolean or array), found '.5'")
        expectError("a = -0x10", line: 1, column: 5, "a sign is not allowed before 0x integers")
        expectError("a = 0b102", line: 1, column: 5, "expected base-2 digits after 0b")
        expectError("a = 9223372036854775808", line: 1, column: 5, "does not fit in 64 bits")
        expectError("a = 1979-05-27", line: 1, column: 5, "dates and times are not supported")
        expectError("a = 07:32:00", line: 1, column: 5, "dates and times are not supported")
        expectError("a = True", line: 1, column: 5, "found 'True'")
        expectError("a = yes", line: 1, column: 5, "found 'yes'")
        expectError("a = @", line: 1, column: 5, "expected a value (string, integer, float, boolean or array), found '@'")
        expectError("a = [1 2]", line: 1, column: 8, "expected ',' or ']' after an array element, found '2'")
        expectError("a = [,]", line: 1, column: 6, "expected a value or ']' in an array, found ','")
        expectError("a = [1,", line: 1, column: 8, "expected a value, found end of file")
        expectError("a = truex", line: 1, column: 5, "found 'truex'")
        expectError("\"\"\"k\"\"\" = 1", line: 1, column: 1, "multi-line strings cannot be keys")
        expectError("ké = 1", line: 1, column: 2, "expected '=' after the key 'k', found 'é'")
    }

    @Test func unreadableFiles() throws {
        #expect { try TOML.parse(contentsOf: "/nonexistent/job.toml") } throws: { e in
            "\(e)".contains("/nonexistent/job.toml") && "\(e)".contains("cannot read")
        }
        let dir = try TestData.tempDir("toml")
        let p = dir.appendingPathComponent("bad.toml").path
        try Data([0x61, 0x20, 0x3D, 0x20, 0x22, 0xFF, 0x22]).write(to: URL(fileURLWithPath: p))
        #expect { try TOML.parse(contentsOf: p) } throws: { e in "\(e)".contains("valid UTF-8") }
    }

    /// Tagged as toml_to_json.py tags tomllib's values, for a structural comparison.
    func tagged(_ v: TOMLValue) -> Any {
        switch v {
        case .string(let s): return ["type": "string", "value": s]
        case .integer(let i): return ["type": "integer", "value": String(i)]
        case .float(let f):
            let hex = String(f.bitPattern, radix: 16)
            return ["type": "float", "value": f.isNaN ? "nan" : String(repeating: "0", count: 16 - hex.count) + hex]
        case .bool(let b): return ["type": "bool", "value": b ? "true" : "false"]
        case .array(let a): return a.map(tagged)
        case .table(let t): return Dictionary(uniqueKeysWithValues: t.keys.map { ($0, tagged(t[$0]!)) })
        }
    }

    func canonicalJSON(_ any: Any) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: any, options: [.sortedKeys]), as: UTF8.self)
    }

    static let crossCheckDocuments = [
        """
        # strings of every kind
        a = "tab\\there \\"q\\" back\\\\slash \\b\\f\\r\\n \\u00E9 \\U0001F600 \\u0000"
        b = 'literal \\n stays'
        c = ""
        d = "embedded\ttab"
        "key with spaces" = 'x'
        'lit.key' = "dots in quoted keys are not paths"
        "ünicode" = "ok"
        """,
        """
        [numbers]
        i = [0, -0, +0, 1_000_000, -9223372036854775808, 9223372036854775807, 0xFF, 0xdead_beef, 0o17, 0b1010_1010]
        f = [0.0, -0.0, +1.5, 3.141_592_653_589_793, 1e10, 1E-10, -2.5e+3, 6.626e-34, 1e400, 5e-324, 0.1, inf, +inf, -inf, nan, -nan, +nan]
        exp_zero_prefixed = 1e007
        b = [true, false]
        mixed = [1, "two", 3.0, [4, [5]], []]
        """,
        """
        [a.b.c]
        x = 1
        [a]
        y = 2
        [a.b]
        z = 3
        [ "quoted" . 'parts' . bare-1 ]
        w = 4
        [a.d]
        """,
        "\n\n   # indented comment\n  k = 1   \n\t[t]\t# tab\n\tv = [\n  1, # one\n\n  2,\n]\n",
    ]

    static let rejectedByBoth = [
        "a = 1\na = 2", "[t]\n[t]", "a = 01", "a = 1__0", "a = 1.", "a = .5", "a = \"\\q\"", "a = [1 2]",
        "a = 1 b = 2", "a = \"x\n\"", "a = 'x\u{01}'", "a = -0x1", "a =", "= 1", "[t]x=1", "a = +nan_",
        "a = \"\\uD800\"", "x = 1\r\n\ry = 2",
    ]

    /// Every example job file in cluster-configs/ and the documents above mean the same to us as to tomllib;
    /// documents tomllib refuses we refuse too.
    @Test func agreesWithTomllib() throws {
        let dir = try TestData.tempDir("tomlx")
        var files: [String] = []
        for (n, doc) in Self.crossCheckDocuments.enumerated() {
            let p = dir.appendingPathComponent("doc\(n).toml").path
            try doc.write(toFile: p, atomically: true, encoding: .utf8)
            files.append(p)
        }
        let configs = TestData.packageRoot.appendingPathComponent("cluster-configs")
        let jobs = try FileManager.default.contentsOfDirectory(atPath: configs.path).filter { $0.hasSuffix(".toml") }.sorted()
        #expect(jobs.count >= 2, "cluster-configs/ has \(jobs)")
        files += jobs.map { configs.appendingPathComponent($0).path }
        for f in files {
            let ours = try canonicalJSON(tagged(.table(try TOML.parse(contentsOf: f))))
            let theirs = try canonicalJSON(JSONSerialization.jsonObject(with: Data(try runPython("toml_to_json.py", [f]).utf8)))
            #expect(ours == theirs, "\(f):\nours   \(ours)\ntomllib \(theirs)")
        }
        for (n, doc) in Self.rejectedByBoth.enumerated() {
            let p = dir.appendingPathComponent("bad\(n).toml").path
            try doc.write(toFile: p, atomically: true, encoding: .utf8)
            #expect(throws: TOMLError.self, "we accept \(doc.debugDescription)") { try TOML.parse(contentsOf: p) }
            #expect(throws: ProcessFailure.self, "tomllib accepts \(doc.debugDescription)") { try runPython("toml_to_json.py", [p]) }
        }
    }
}
