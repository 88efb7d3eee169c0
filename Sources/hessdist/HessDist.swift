// The command-line tool: parse, call, print. Only this target exits.
import ArgumentParser
import Foundation
import Node

@main
struct HessDist: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hessdist",
        abstract: "Hessian-guided mixed-precision quantization of LLaMA-family models.",
        subcommands: [Inspect.self, Eval.self, Generate.self, Profile.self, Allocate.self, Report.self, Quantize.self, Bench.self, ClusterSelftest.self])

    /// ArgumentParser's main plus MPI's lifecycle: MPI_Finalize once after a successful command;
    /// on an error in a multi-rank job, MPI_Abort so every rank stops (instead of the others waiting
    /// in a collective forever) and the job exits non-zero with a message naming the failed rank.
    static func main() {
        // Before anything else (MPI_Init, threads): OpenBLAS's fallback to SSE kernels on CPUs newer than it
        // costs up to 5× in every matrix product. Only rank 0 of an mpirun job says so.
        BLASKernelSelection.restartIfOpenBLASFellBack { line in
            let rank = ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_RANK"] ?? "0"
            if rank == "0" { FileHandle.standardError.write(Data((line + "\n").utf8)) }
        }
        // Parsing first, apart: a refused option that came from a job file gets a note naming its line.
        var command: ParsableCommand
        do {
            command = try parseAsRoot(try JobExpansion.expand(Array(CommandLine.arguments.dropFirst())))
        } catch {
            let code = exitCode(for: error)
            guard code != .success else { exit(withError: error) }  // --help and friends
            FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
            for note in JobExpansion.notes(for: error) { FileHandle.standardError.write(Data((note + "\n").utf8)) }
            Foundation.exit(code.rawValue)
        }
        do {
            try command.run()
            MPIRuntime.shutdown()
        } catch {
            if let rt = MPIRuntime.active, rt.size > 1 {
                MPIRuntime.abort(code: 1, message: "hessdist: rank \(rt.rank) of \(rt.size) failed: \(error)\nhessdist: aborting the MPI job")
            }
            MPIRuntime.shutdown()
            exit(withError: error)
        }
    }
}
