// Helpers for the tokenizer tests: typed-JSON metadata from the Python dumps, and Python reference ids.
import Foundation
import TestSupport
@testable import Node

enum TokenizerFixtures {
    /// Reads the `{"keys", "values"}` JSON written by Tests/Python/{gguf_tokenizer_dump,spm_vocab_from_model}.py.
    static func metadata(json path: String, file: String) throws -> GGUFMetadata {
        let obj = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
        let keys = obj["keys"] as! [String]
        let raw = obj["values"] as! [String: [String: Any]]
        var values: [String: GGUFValue] = [:]
        for (k, v) in raw {
            let type = v["type"] as! String
            if type == "array" {
                let elem = v["elem"] as! String
                values[k] = .array((v["value"] as! [Any]).map { value(elem, $0) })
            } else {
                values[k] = value(type, v["value"]!)
            }
        }
        return GGUFMetadata(file: file, values: values, keys: keys)
    }

    static func value(_ type: String, _ v: Any) -> GGUFValue {
        switch type {
        case "string": return .string(v as! String)
        case "bool": return .bool(v as! Bool)
        case "float32": return .float32((v as! NSNumber).floatValue)
        case "float64": return .float64((v as! NSNumber).doubleValue)
        case "uint8": return .uint8((v as! NSNumber).uint8Value)
        case "int8": return .int8((v as! NSNumber).int8Value)
        case "uint16": return .uint16((v as! NSNumber).uint16Value)
        case "int16": return .int16((v as! NSNumber).int16Value)
        case "uint32": return .uint32((v as! NSNumber).uint32Value)
        case "int32": return .int32((v as! NSNumber).int32Value)
        case "uint64": return .uint64((v as! NSNumber).uint64Value)
        case "int64": return .int64((v as! NSNumber).int64Value)
        default: fatalError("unknown JSON type \(type)")
        }
    }

    /// Runs `python3 Tests/Python/<script> args... TEXTS.json` and parses its JSON list of id lists.
    static func pythonIDs(_ script: String, _ args: [String], texts: [String]) throws -> [[Int32]] {
        let dir = try TestData.tempDir("tok")
        defer { try? FileManager.default.removeItem(at: dir) }
        let p = dir.appendingPathComponent("texts.json")
        try JSONSerialization.data(withJSONObject: texts).write(to: p)
        let out = try runPython(script, args + [p.path])
        let lists = try JSONSerialization.jsonObject(with: Data(out.utf8)) as! [[Int]]
        return lists.map { $0.map { Int32($0) } }
    }

    /// Whether `import sentencepiece` works (the SPM cross-check needs it).
    static let hasSentencePiece: Bool = (try? run(ProcessInfo.processInfo.environment["HESSDIST_PYTHON"] ?? "python3",
                                                  ["-c", "import sentencepiece"])) != nil

    static func text(_ relative: String) throws -> String {
        try String(contentsOfFile: TestData.shared(relative), encoding: .utf8)
    }

    /// Splits `s` into pieces of about `size` UTF-8 bytes, cutting after a newline when one is near.
    static func pieces(_ s: String, size: Int) -> [String] {
        var out: [String] = []
        var cur = ""
        var n = 0
        for line in s.split(separator: "\n", omittingEmptySubsequences: false) {
            cur += line
            cur += "\n"
            n += line.utf8.count + 1
            if n >= size { out.append(cur); cur = ""; n = 0 }
        }
        if !cur.isEmpty { out.append(String(cur.dropLast())) }   // the split added one "\n" too many
        return out
    }

    /// "piece i: first difference at token k: swift [...] vs reference [...]" or nil when equal.
    static func firstMismatch(_ got: [[Int32]], _ want: [[Int32]], texts: [String]) -> String? {
        guard got.count == want.count else { return "\(got.count) results vs \(want.count)" }
        for i in 0..<got.count where got[i] != want[i] {
            let k = (0..<min(got[i].count, want[i].count)).first { got[i][$0] != want[i][$0] } ?? min(got[i].count, want[i].count)
            let lo = max(0, k - 3)
            return "piece \(i) (\(texts[i].prefix(80).debugDescription)): first difference at token \(k): "
                + "swift \(Array(got[i][lo..<min(got[i].count, k + 4)])) vs reference \(Array(want[i][lo..<min(want[i].count, k + 4)]))"
        }
        return nil
    }
}
