// Serializing a `JSONValue` as text: keys sorted (as Python's `json.dump(sort_keys=True)`), optionally
// indented. For config files we write; not a general-purpose encoder (non-finite numbers are refused).

extension JSONValue {
    /// JSON text; `indent` > 0 pretty-prints with that many spaces per level. Precondition: every double
    /// is finite (JSON has no inf/NaN).
    public func text(indent: Int = 2) -> String {
        var out = ""
        write(into: &out, indent: indent, level: 0)
        return out
    }

    private func write(into out: inout String, indent: Int, level: Int) {
        let nl = indent > 0 ? "\n" : ""
        let pad = String(repeating: " ", count: indent * (level + 1))
        let close = String(repeating: " ", count: indent * level)
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d):
            precondition(d.isFinite, "JSON cannot hold \(d)")
            out += "\(d)"
        case .string(let s): out += jsonString(s)
        case .array(let a):
            if a.isEmpty { out += "[]"; return }
            out += "[" + nl
            for (i, e) in a.enumerated() {
                out += pad
                e.write(into: &out, indent: indent, level: level + 1)
                out += (i + 1 < a.count ? "," : "") + nl
            }
            out += close + "]"
        case .object(let o):
            if o.isEmpty { out += "{}"; return }
            out += "{" + nl
            let keys = o.keys.sorted()
            for (i, k) in keys.enumerated() {
                out += pad + jsonString(k) + (indent > 0 ? ": " : ":")
                o[k]!.write(into: &out, indent: indent, level: level + 1)
                out += (i + 1 < keys.count ? "," : "") + nl
            }
            out += close + "}"
        }
    }
}
