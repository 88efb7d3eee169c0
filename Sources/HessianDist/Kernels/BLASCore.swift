// Which OpenBLAS kernels run. Debian's OpenBLAS is built DYNAMIC_ARCH: at load it reads the CPU model and picks
// a kernel family. A CPU model newer than the library (0.3.21 in Debian 12) falls back to "Prescott", SSE3
// kernels: on an Intel Xeon with AVX-512 that measured 31 GFLOP/s single-threaded sgemm against 149 with
// OPENBLAS_CORETYPE=SkylakeX (BENCHMARKS.md). The choice is made before main runs, so correcting it means
// starting the process again with OPENBLAS_CORETYPE set; this type only decides, the runtime re-executes.
import CBLAS

public enum BLASCore {
    /// The kernel family OpenBLAS chose for this process ("Prescott", "Haswell", "SkylakeX", "Zen", …).
    public static var name: String { String(cString: openblas_get_corename()) }

    /// The widest x86 vector extension a kernel family uses, or the CPU and OS support.
    public enum VectorLevel: Int, Comparable, Sendable {
        case sse = 0, avx, avx2, avx512
        public static func < (a: VectorLevel, b: VectorLevel) -> Bool { a.rawValue < b.rawValue }
        /// The OPENBLAS_CORETYPE that gives this level's kernels on any vendor's CPU.
        public var coreType: String {
            switch self {
            case .sse: return "Prescott"
            case .avx: return "Sandybridge"
            case .avx2: return "Haswell"
            case .avx512: return "SkylakeX"
            }
        }
    }

    /// OpenBLAS's x86 kernel families (driver/others/dynamic.c's corename table) by the vector level they
    /// use. A name not listed (another architecture, a newer family) has no level: it is never overridden.
    static let levelOfCore: [String: VectorLevel] = {
        var t: [String: VectorLevel] = [:]
        for n in ["katmai", "coppermine", "northwood", "prescott", "banias", "atom", "core2", "penryn", "dunnington",
                  "nehalem", "athlon", "opteron", "opteron_sse3", "opteron(sse3)", "barcelona", "nano", "bobcat"] { t[n] = .sse }
        for n in ["sandybridge", "bulldozer", "piledriver"] { t[n] = .avx }
        for n in ["haswell", "steamroller", "excavator", "zen"] { t[n] = .avx2 }
        for n in ["skylakex", "cooperlake", "sapphirerapids"] { t[n] = .avx512 }
        return t
    }()

    public static func level(ofCore name: String) -> VectorLevel? { levelOfCore[name.lowercased()] }

    /// The level the CPU and the OS support, from the kernel's feature flags (/proc/cpuinfo's `flags`, which
    /// Linux clears for extensions whose register state the OS does not save). AVX-512 needs the subsets
    /// OpenBLAS's SkylakeX kernels use (F, CD, BW, DQ, VL); AVX2 kernels need FMA too.
    public static func level(cpuFlags: Set<String>) -> VectorLevel {
        if ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(cpuFlags.contains) { return .avx512 }
        if cpuFlags.contains("avx2") && cpuFlags.contains("fma") { return .avx2 }
        if cpuFlags.contains("avx") { return .avx }
        return .sse
    }

    /// The OPENBLAS_CORETYPE to run with instead of `current`, when OpenBLAS chose a family narrower than
    /// the CPU supports; nil when its choice stands (already as wide, or a family this table does not know).
    public static func betterCoreType(current: String, cpuFlags: Set<String>) -> String? {
        guard let have = level(ofCore: current) else { return nil }
        let can = level(cpuFlags: cpuFlags)
        return can > have ? can.coreType : nil
    }
}
