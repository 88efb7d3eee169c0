import Foundation
import Testing
@testable import Coordinator

/// Job files to flags, on a hand-made schema (the CLI's real one is exercised by the integration tests).
@Suite struct JobFileTests {
    let schema = JobSchema(command: "quantize", tables: [
        "calibration": ["nsamples": JobFlag("nsamples", .option), "text": JobFlag("calib", .option)],
        "quantize": ["act_order": JobFlag("act-order", .flag(inverted: nil)),
                     "importance_fit": JobFlag("importance-fit", .flag(inverted: "no-importance-fit")),
                     "group_size": JobFlag("group-size", .option), "shrink": JobFlag("shrink", .option)],
        "mixed": ["pins": JobFlag("pin", .repeating), "candidates": JobFlag("candidates", .commaList)],
        "profile": ["traces": Optional<JobFlag>.none],  // a key of the other command
    ])

    func args(_ text: String) throws -> [JobArgument] {
        try JobFile.arguments(TOML.parse(text, file: "job.toml"), schema: schema)
    }

    func error(_ text: String) -> JobFileError? {
        do { _ = try args(text); return nil } catch let e as JobFileError { return e } catch { return nil }
    }

    @Test func translatesEveryKind() throws {
        let a = try args("""
            [quantize]
            group_size = -1
            shrink = 0.5
            act_order = true
            importance_fit = false
            [calibration]
            text = "~/calib.txt"
            nsamples = 16
            [mixed]
            pins = ["a=Q8_0", 'b=Q4_0']
            candidates = ["Q4_0", "Q8_0"]
            [profile]
            traces = "fisher"
            """)
        #expect(a.map(\.tokens) == [["--group-size=-1"], ["--shrink=0.5"], ["--act-order"], ["--no-importance-fit"],
                                    ["--calib=\(NSHomeDirectory())/calib.txt"], ["--nsamples=16"], ["--pin=a=Q8_0", "--pin=b=Q4_0"],
                                    ["--candidates=Q4_0,Q8_0"]])
        #expect(a[0].source == "[quantize] group_size at job.toml:2:1")
        #expect(a[3].names == ["importance-fit", "no-importance-fit"])
        // false on a flag with no inversion is its default: no token.
        #expect(try args("[quantize]\nact_order = false").map(\.tokens) == [[]])
        #expect(try args("[mixed]\ncandidates = 'Q4_0,Q5_0'").map(\.tokens) == [["--candidates=Q4_0,Q5_0"]])
        #expect(try args("[quantize]\nshrink = inf").map(\.tokens) == [["--shrink=inf"]])
    }

    @Test func refusesWhatIsNotAJob() {
        #expect(error("nsamples = 1") == .keyOutsideTable(TOMLPosition(file: "job.toml", line: 1, column: 1), key: "nsamples",
                                                          tables: ["calibration", "mixed", "profile", "quantize"]))
        let t = error("[calibraton]\nnsamples = 1")
        #expect(t == .unknownTable(TOMLPosition(file: "job.toml", line: 1, column: 1), table: "calibraton",
                                   valid: ["calibration", "mixed", "profile", "quantize"]))
        #expect("\(t!)" == "job.toml:1:1: unknown table [calibraton] (did you mean 'calibration'?); the tables are [calibration], [mixed], [profile], [quantize]")
        let k = error("[calibration]\nnsamples = 1\nnsample = 2")
        #expect("\(k!)" == "job.toml:3:1: unknown key 'nsample' in [calibration] (did you mean 'nsamples'?); valid keys there: nsamples, text")
        #expect("\(error("[calibration]\nzzz = 2")!)".hasSuffix("unknown key 'zzz' in [calibration]; valid keys there: nsamples, text"))
        #expect("\(error("[quantize.sub]\nx = 1")!)".hasPrefix("job.toml:1:1: unknown table [quantize.sub]"))
        #expect("\(error("[quantize]\nact_order = 1")!)" == "job.toml:2:1: [quantize] act_order: expected true or false (--act-order is a flag), found an integer")
        #expect("\(error("[quantize]\nshrink = true")!)".hasSuffix("[quantize] shrink: expected a string or a number for --shrink, found a boolean"))
        #expect("\(error("[quantize]\nshrink = [1]")!)".hasSuffix("expected a string or a number for --shrink, found an array"))
        #expect("\(error("[mixed]\npins = 'a=Q8_0'")!)".hasSuffix("[mixed] pins: expected an array (one --pin per element), found a string"))
        #expect("\(error("[mixed]\npins = [true]")!)".contains("with a boolean in it"))
        #expect("\(error("[mixed]\ncandidates = [4]")!)".contains("expected an array of strings for --candidates, with an integer in it"))
        #expect("\(error("[mixed]\ncandidates = 4")!)".contains("or one comma-separated string"))
    }

    @Test func commandLineOverridesTheFile() throws {
        let a = try args("[quantize]\nshrink = 0.5\nimportance_fit = false\n[calibration]\nnsamples = 16\n[mixed]\npins = ['a=Q8_0', 'b=Q8_0']")
        #expect(JobFile.merge(a, commandLine: ["--importance-fit", "--nsamples=4", "--pin", "c=Q4_0", "--out", "o"])
                == ["--shrink=0.5", "--importance-fit", "--nsamples=4", "--pin", "c=Q4_0", "--out", "o"])
        #expect(JobFile.merge(a, commandLine: []) == ["--shrink=0.5", "--no-importance-fit", "--nsamples=16", "--pin=a=Q8_0", "--pin=b=Q8_0"])
    }

    @Test func rankCountMustMatch() throws {
        try RankCountMismatch.check(expected: nil, actual: 3, source: "--ranks")
        try RankCountMismatch.check(expected: 2, actual: 2, source: "--ranks")
        #expect(throws: RankCountMismatch(expected: 2, actual: 1, source: "--ranks 2")) {
            try RankCountMismatch.check(expected: 2, actual: 1, source: "--ranks 2")
        }
        let e = RankCountMismatch(expected: 8, actual: 2, source: "[cluster] ranks in j.toml")
        #expect("\(e)".hasPrefix("[cluster] ranks in j.toml expects 8 MPI ranks, but this job runs on 2 ranks (mpirun -np 2)"))
        #expect(JobFileError.editDistance("nsample", "nsamples") == 1 && JobFileError.editDistance("", "abc") == 3
                && JobFileError.editDistance("kitten", "sitting") == 3)
    }
}
