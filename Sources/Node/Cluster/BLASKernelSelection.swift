// Starting again with OPENBLAS_CORETYPE set when OpenBLAS fell back to kernels narrower than the CPU
// (BLASCore says when). It must run first in main: before MPI_Init, before any thread exists.
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import HessianDist

public enum BLASKernelSelection {
    /// Set in the restarted process, so that it never restarts twice.
    static let markerVariable = "HESSDIST_BLAS_CORETYPE_SET"

    /// The restart the environment and CPU call for, or nil: none when the user set OPENBLAS_CORETYPE
    /// (their choice stands), when this process is already the restarted one, or when OpenBLAS's own
    /// choice is as wide as the CPU's flags allow.
    public static func plannedCoreType(environment: [String: String], currentCore: String,
                                       cpuFlags: Set<String>) -> String? {
        guard environment["OPENBLAS_CORETYPE"] == nil, environment["GOTOBLAS_CORETYPE"] == nil,
              environment[markerVariable] == nil else { return nil }
        return BLASCore.betterCoreType(current: currentCore, cpuFlags: cpuFlags)
    }

    /// The first `flags` line of /proc/cpuinfo (every core lists the same), empty where there is none.
    public static func cpuFlags(cpuinfo: String) -> Set<String> {
        for line in cpuinfo.split(separator: "\n") where line.hasPrefix("flags") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
        }
        return []
    }

    /// Re-executes this program with OPENBLAS_CORETYPE set when `plannedCoreType` asks for it; returns
    /// when nothing is to be done or the exec failed (the job then runs on OpenBLAS's own choice).
    /// `note` receives one line saying what happened.
    public static func restartIfOpenBLASFellBack(note: (String) -> Void) {
        #if os(Linux)
        let env = ProcessInfo.processInfo.environment
        guard let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return }
        let current = BLASCore.name
        guard let core = plannedCoreType(environment: env, currentCore: current, cpuFlags: cpuFlags(cpuinfo: cpuinfo))
        else { return }
        setenv("OPENBLAS_CORETYPE", core, 1)
        setenv(markerVariable, "1", 1)
        note("hessdist: OpenBLAS chose \(current) kernels on a CPU with wider vector units; restarting with OPENBLAS_CORETYPE=\(core) (set OPENBLAS_CORETYPE to choose yourself)")
        let args = CommandLine.arguments.map { strdup($0) } + [nil]
        execv("/proc/self/exe", args)
        for a in args { free(a) }  // only reached when execv failed
        note("hessdist: restart failed (\(String(cString: strerror(errno)))); continuing with \(current) kernels")
        #endif
    }
}
