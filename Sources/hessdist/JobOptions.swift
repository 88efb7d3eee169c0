// `--job FILE.toml` for quantize and profile: the file's tables and keys, derived from the commands'
// ArgumentParser declarations, and its expansion into flags before parsing. Not here: reading TOML or
// turning values into flags (Coordinator/Config), or checking any value (each command's validate()).
import ArgumentParser
import Coordinator
import Foundation
import Node

/// The job file and the rank count it was planned for: shared by quantize and profile.
struct JobOptions: ParsableArguments {
    @Option(help: ArgumentHelp("TOML job file: the same options as the flags, in tables ([model], [calibration], [quantize], [gptq], [mixed], [profile], [output], [cluster]; see cluster-configs/README.md). Flags given on the command line override it.", valueName: "file.toml"))
    var job: String?
    @Option(help: "The MPI world size this job is planned for ([cluster] ranks in a job file): refused if the launcher started another number.")
    var ranks: Int?

    func validate() throws {
        if let r = ranks, r < 1 { throw ValidationError("--ranks \(r): expected >= 1") }
    }

    /// Before any work: the world size matches `ranks`.
    func checkRanks(_ comm: Comm) throws {
        let fromFile = JobExpansion.fromFile.first { $0.flag.name == "ranks" }
        let source = fromFile.map { "[cluster] ranks = \(ranks ?? 0) (\($0.source.split(separator: " ").last!))" } ?? "--ranks \(ranks ?? 0)"
        try RankCountMismatch.check(expected: ranks, actual: comm.size, source: source)
    }
}

/// Which flags each job-file table holds.
///
/// Why translate the file into the argument list and then parse, instead of decoding it into the option
/// structs: the option groups stay the one place that names, types, defaults and validates every option.
/// A job file is then exactly "these flags, written down": a value the flag would refuse is refused with
/// the same message (plus a note pointing at the file's line), a new flag is a job-file key at once, and
/// command-line flags override the file by the usual last-wins rule. The tables' contents are read from
/// ArgumentParser's own description of the option groups (`_dumpHelp`, its JSON tool info), so the only
/// names written here are the tables, a few renames (`[model] path` for `--model`), and the flags of a
/// command that are not in a shared group.
enum JobLayout {
    struct Table {
        var name: String
        var groups: [ParsableArguments.Type] = []
        var flags: [String] = []
        /// Flag → key, where the flag's own name reads badly inside its table.
        var renames: [String: String] = [:]
        /// Takes every flag of the command that no other table does (the command's own options).
        var rest = false
    }

    /// Options whose value is a comma-separated list: an array in the file.
    static let commaLists: Set<String> = ["candidates", "traces", "eigenvalues"]

    static func tables(_ command: ParsableCommand.Type) -> [Table] {
        let common = [
            Table(name: "model", groups: [ModelOptions.self], renames: ["model": "path"]),
            Table(name: "calibration", groups: [CalibrationOptions.self], renames: ["calib": "text"]),
            Table(name: "gptq", groups: [CheckpointOptions.self]),
            Table(name: "cluster", groups: [JobOptions.self, TopologyOptions.self]),
            Table(name: "quantize", rest: true),
        ]
        if command == Profile.self {
            // The profile's output is the statistics file, which quantize reads as --stats: one key for both.
            return common + [Table(name: "profile", groups: [TraceOptions.self], flags: ["traces", "eigenvalues", "eigen-iterations", "out", "html"],
                                   renames: ["out": "stats"]),
                             Table(name: "mixed"), Table(name: "output")]
        }
        return common + [
            Table(name: "mixed", groups: [BudgetOptions.self], renames: ["pin": "pins"]),
            Table(name: "profile", groups: [TraceOptions.self], flags: ["stats"]),
            Table(name: "output", flags: ["out", "report", "html", "resume"], renames: ["out": "path"]),
        ]
    }

    /// The commands that read the same job files: a key is valid if any of them takes it.
    static let commands: [ParsableCommand.Type] = [Quantize.self, Profile.self]

    /// Long name → flag, from ArgumentParser's JSON description of `type` (help and --job left out: a job
    /// file does not include another).
    static func flags(of type: ParsableArguments.Type) -> [String: JobFlag] {
        guard let root = try? JSONSerialization.jsonObject(with: Data(type._dumpHelp().utf8)) as? [String: Any],
              let command = root["command"] as? [String: Any], let args = command["arguments"] as? [[String: Any]] else {
            preconditionFailure("ArgumentParser's tool info for \(type) is not the JSON expected")
        }
        var options: [String: JobFlag] = [:], switches = Set<String>()
        for a in args {
            let kind = a["kind"] as? String
            for n in (a["names"] as? [[String: Any]]) ?? [] where n["kind"] as? String == "long" {
                guard let name = n["name"] as? String, name != "help", name != "job" else { continue }
                if kind == "flag" { switches.insert(name) }
                else if kind == "option" {
                    let repeating = a["isRepeating"] as? Bool ?? false
                    options[name] = JobFlag(name, repeating ? .repeating : commaLists.contains(name) ? .commaList : .option)
                }
            }
        }
        // `--[no-]importance-fit` is two flags to ArgumentParser and one boolean key here.
        for s in switches where !(s.hasPrefix("no-") && switches.contains(String(s.dropFirst(3)))) {
            options[s] = JobFlag(s, .flag(inverted: switches.contains("no-" + s) ? "no-" + s : nil))
        }
        return options
    }

    /// Table → key → flag for `command`, with nil for keys only the other commands take.
    static func schema(for command: ParsableCommand.Type) -> JobSchema {
        var out: [String: [String: JobFlag?]] = [:]
        for c in commands {
            let all = flags(of: c)
            var placed = Set<String>()
            var layout: [(Table, [JobFlag])] = []
            for t in tables(c) where !t.rest {
                var fs = t.groups.flatMap { flags(of: $0).values }.filter { all[$0.name] != nil }
                for f in t.flags {
                    guard let flag = all[f] else { preconditionFailure("job table [\(t.name)]: \(c._commandName) has no --\(f)") }
                    fs.append(flag)
                }
                placed.formUnion(fs.map(\.name))
                layout.append((t, fs))
            }
            let restTable = tables(c).first { $0.rest }!
            layout.append((restTable, all.values.filter { !placed.contains($0.name) }))
            for (t, fs) in layout {
                var keys = out[t.name] ?? [:]
                for f in fs {
                    let key = (t.renames[f.name] ?? f.name).replacingOccurrences(of: "-", with: "_")
                    if c == command { keys[key] = .some(f) } else if keys[key] == nil { keys[key] = .some(nil) }
                }
                out[t.name] = keys
            }
        }
        return JobSchema(command: command._commandName, tables: out)
    }
}

/// Expands `hessdist quantize|profile --job FILE …` into the flags the file stands for followed by the
/// command line's own (which then override it), before ArgumentParser sees them.
enum JobExpansion {
    /// The arguments taken from the file in this process, for pointing at their lines when the command refuses one.
    nonisolated(unsafe) static var fromFile: [JobArgument] = []

    static func expand(_ args: [String]) throws -> [String] {
        guard let sub = args.first, let command = JobLayout.commands.first(where: { $0._commandName == sub }) else { return args }
        var path: String?
        for (k, t) in args.enumerated() {
            if t == "--job", k + 1 < args.count { path = args[k + 1] }
            if t.hasPrefix("--job=") { path = String(t.dropFirst(6)) }
        }
        guard let path else { return args }
        let doc = try TOML.parse(contentsOf: path)
        let file = try JobFile.arguments(doc, schema: JobLayout.schema(for: command))
        let rest = Array(args.dropFirst())
        let given = Set(rest.filter { $0.hasPrefix("--") }.map { String($0.dropFirst(2).prefix { $0 != "=" }) })
        fromFile = file.filter { !$0.names.contains(where: given.contains) }
        return [sub] + JobFile.merge(file, commandLine: rest)
    }

    /// "note: --nsamples is [calibration] nsamples at job.toml:7:1" for each file argument the error names.
    static func notes(for error: Error) -> [String] {
        let message = HessDist.message(for: error)  // not the usage line, which names --model and --out
        func mentions(_ name: String) -> Bool {
            // Whole names only: --out is not named by "--output-type".
            message.range(of: "--\(name)(?![a-z0-9-])", options: .regularExpression) != nil
        }
        return fromFile.filter { $0.names.contains(where: mentions) }
            .map { "note: --\($0.flag.name) is \($0.source)" }
    }
}
