// Job files: a TOML document whose `[table]` keys are a command's flags, translated into the argument list
// the command would have been given. Not here: which flag sits in which table (the CLI derives that from its
// ArgumentParser option groups) and the meaning or range of any value (the command's own parsing and
// `validate()` check the translated flags exactly as if they had been typed).
import Foundation

/// A flag a job-file key stands for.
public struct JobFlag: Equatable, Sendable {
    public enum Kind: Equatable, Sendable {
        /// `--name=value`, the value a string or number.
        case option
        /// An array, one `--name=element` per element (`pins = [...]` for `--pin`).
        case repeating
        /// An array (or one string) joined by commas into one `--name=a,b` (`traces = ["fisher", "hutchinson"]`).
        case commaList
        /// A boolean: true gives `--name`, false gives `--<inverted>` if the flag has one, else nothing (off).
        case flag(inverted: String?)
    }
    public var name: String
    public var kind: Kind
    public init(_ name: String, _ kind: Kind) { self.name = name; self.kind = kind }
}

/// The tables and keys a job file may hold, for one command.
public struct JobSchema: Sendable {
    /// The command the file is expanded for, in messages.
    public var command: String
    /// Table → key → the flag it is for this command, or nil when the key is for another command reading the
    /// same file (a mixed-precision job's `[output] path` is quantize's, not profile's): valid, and skipped.
    public var tables: [String: [String: JobFlag?]]
    public init(command: String, tables: [String: [String: JobFlag?]]) { self.command = command; self.tables = tables }
}

/// One flag expanded from the file, with the place it came from (quoted when the command refuses it).
public struct JobArgument: Equatable, Sendable {
    public var flag: JobFlag
    /// What goes on the command line: `["--nsamples=16"]`, `["--pin=a", "--pin=b"]`, `[]` for an off flag.
    public var tokens: [String]
    /// `[calibration] nsamples at job.toml:7:1`.
    public var source: String
    /// The long names that override this argument when given on the command line.
    public var names: [String] {
        if case .flag(let inv?) = flag.kind { return [flag.name, inv] }
        return [flag.name]
    }
}

/// A job file that parses as TOML but is not a job for this command.
public enum JobFileError: Error, Equatable, Sendable, CustomStringConvertible {
    case keyOutsideTable(TOMLPosition, key: String, tables: [String])
    case unknownTable(TOMLPosition, table: String, valid: [String])
    case unknownKey(TOMLPosition, table: String, key: String, valid: [String])
    case wrongValue(TOMLPosition, table: String, key: String, expected: String, found: String)

    public var description: String {
        switch self {
        case .keyOutsideTable(let p, let key, let tables):
            return "\(p): key '\(key)' must be under a table header; the tables are \(tables.map { "[\($0)]" }.joined(separator: ", "))"
        case .unknownTable(let p, let table, let valid):
            return "\(p): unknown table [\(table)]\(Self.suggest(table, valid)); the tables are \(valid.map { "[\($0)]" }.joined(separator: ", "))"
        case .unknownKey(let p, let table, let key, let valid):
            return "\(p): unknown key '\(key)' in [\(table)]\(Self.suggest(key, valid)); valid keys there: \(valid.joined(separator: ", "))"
        case .wrongValue(let p, let table, let key, let expected, let found):
            return "\(p): [\(table)] \(key): expected \(expected), found \(found)"
        }
    }

    /// "(did you mean 'nsamples'?)" for a name at most two edits from a valid one: the usual typo.
    static func suggest(_ name: String, _ valid: [String]) -> String {
        let best = valid.map { ($0, editDistance(name, $0)) }.min { $0.1 < $1.1 }
        guard let (v, d) = best, d <= 2 else { return "" }
        return " (did you mean '\(v)'?)"
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        guard !a.isEmpty, !b.isEmpty else { return max(a.count, b.count) }
        var row = Array(0...b.count)
        for i in 1...a.count {
            var prev = row[0]
            row[0] = i
            for j in 1...b.count {
                let cur = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] == b[j - 1] ? 0 : 1))
                prev = cur
            }
        }
        return row[b.count]
    }
}

public enum JobFile {
    /// The flags a parsed job file stands for, in file order. Every table and key must be in the schema
    /// (a typo is an error naming the valid ones, never silently dropped); keys for another command are skipped.
    public static func arguments(_ doc: TOMLTable, schema: JobSchema) throws -> [JobArgument] {
        let tableNames = schema.tables.keys.sorted()
        var out: [JobArgument] = []
        for name in doc.keys {
            let at = doc.position(of: name)!
            guard case .table(let table) = doc[name]! else {
                throw JobFileError.keyOutsideTable(at, key: name, tables: tableNames)
            }
            guard let keys = schema.tables[name] else {
                throw JobFileError.unknownTable(at, table: name, valid: tableNames)
            }
            let validKeys = keys.keys.sorted()
            for key in table.keys {
                let kat = table.position(of: key)!
                let value = table[key]!
                if case .table = value {
                    throw JobFileError.unknownTable(kat, table: "\(name).\(key)", valid: tableNames)
                }
                guard let entry = keys[key] else {
                    throw JobFileError.unknownKey(kat, table: name, key: key, valid: validKeys)
                }
                guard let flag = entry else { continue }  // another command's key
                let tokens = try self.tokens(flag, value) { expected in
                    JobFileError.wrongValue(kat, table: name, key: key, expected: expected, found: value.typeName)
                }
                out.append(JobArgument(flag: flag, tokens: tokens, source: "[\(name)] \(key) at \(kat)"))
            }
        }
        return out
    }

    static func tokens(_ flag: JobFlag, _ value: TOMLValue, _ wrong: (String) -> JobFileError) throws -> [String] {
        let dashed = "--" + flag.name
        switch flag.kind {
        case .flag(let inverted):
            guard case .bool(let b) = value else { throw wrong("true or false (\(dashed) is a flag)") }
            if b { return [dashed] }
            return inverted.map { ["--" + $0] } ?? []
        case .option:
            guard let s = scalar(value) else { throw wrong("a string or a number for \(dashed)") }
            // `--name=value`, so a value such as -1 is not taken for an option.
            return [dashed + "=" + s]
        case .repeating:
            guard case .array(let a) = value else { throw wrong("an array (one \(dashed) per element)") }
            return try a.map {
                guard let s = scalar($0) else { throw wrong("an array of strings or numbers for \(dashed), with \($0.typeName) in it") }
                return dashed + "=" + s
            }
        case .commaList:
            if case .string(let s) = value { return [dashed + "=" + s] }
            guard case .array(let a) = value else { throw wrong("an array of strings for \(dashed) (or one comma-separated string)") }
            let parts = try a.map {
                guard case .string(let s) = $0 else { throw wrong("an array of strings for \(dashed), with \($0.typeName) in it") }
                return s
            }
            return [dashed + "=" + parts.joined(separator: ",")]
        }
    }

    /// A string or number as the command line would spell it (booleans, arrays and tables are not options).
    static func scalar(_ v: TOMLValue) -> String? {
        switch v {
        case .string(let s):
            // A job file has no shell to expand `~/`; paths in it are the flags' paths, so do what the shell would.
            if s.hasPrefix("~/") { return NSHomeDirectory() + s.dropFirst() }
            return s
        case .integer(let i): return String(i)
        case .float(let f): return f.isNaN ? "nan" : f.isInfinite ? (f < 0 ? "-inf" : "inf") : "\(f)"
        case .bool, .array, .table: return nil
        }
    }

    /// The job file's arguments then the command line's, minus every file argument the command line gives
    /// again (by any of its names): the command line overrides the file, also for repeating flags such as
    /// `--pin`, whose values would otherwise add up.
    public static func merge(_ file: [JobArgument], commandLine: [String]) -> [String] {
        var given = Set<String>()
        for t in commandLine where t.hasPrefix("--") {
            given.insert(String(t.dropFirst(2).prefix { $0 != "=" }))
        }
        return file.filter { a in !a.names.contains(where: given.contains) }.flatMap(\.tokens) + commandLine
    }
}

/// `[cluster] ranks` (or `--ranks`) against the world the launcher started: a job planned for N ranks that
/// runs on another number would still give the same bytes, but not in the time or memory it was sized for.
public struct RankCountMismatch: Error, Equatable, Sendable, CustomStringConvertible {
    public var expected: Int
    public var actual: Int
    /// Where `expected` came from: "--ranks 2", "[cluster] ranks in job.toml".
    public var source: String
    public init(expected: Int, actual: Int, source: String) { self.expected = expected; self.actual = actual; self.source = source }

    public var description: String {
        let how = actual == 1 ? "1 rank (no mpirun, or mpirun -np 1)" : "\(actual) ranks (mpirun -np \(actual))"
        return "\(source) expects \(expected) MPI rank\(expected == 1 ? "" : "s"), but this job runs on \(how): "
            + "launch it with `mpirun -np \(expected) …` (on one machine: scripts/run-local.sh \(expected) …), or change ranks"
    }

    public static func check(expected: Int?, actual: Int, source: String) throws {
        if let e = expected, e != actual { throw RankCountMismatch(expected: e, actual: actual, source: source) }
    }
}
