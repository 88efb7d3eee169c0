import Testing
@testable import Node

/// The restart decision: the CPU's flags from /proc/cpuinfo, and the user's own OPENBLAS_CORETYPE first.
@Suite struct BLASKernelSelectionTests {
    static let cpuinfo = """
        processor\t: 0
        vendor_id\t: GenuineIntel
        model name\t: Intel(R) Xeon(R) Platinum
        flags\t\t: fpu vme sse sse2 ssse3 fma sse4_1 sse4_2 avx avx2 avx512f avx512dq avx512cd avx512bw avx512vl
        bugs\t\t: spectre_v1

        processor\t: 1
        flags\t\t: fpu
        """

    @Test func flagsAreTheFirstCoresLine() {
        let f = BLASKernelSelection.cpuFlags(cpuinfo: Self.cpuinfo)
        #expect(f.contains("avx512vl") && f.contains("fma") && f.contains("fpu"))
        #expect(!f.contains("spectre_v1") && !f.contains(""))
        #expect(f.count == 15)
        #expect(BLASKernelSelection.cpuFlags(cpuinfo: "processor\t: 0\nFeatures\t: fp asimd\n").isEmpty)
    }

    @Test func restartOnlyWhenNobodyChose() {
        let flags = BLASKernelSelection.cpuFlags(cpuinfo: Self.cpuinfo)
        #expect(BLASKernelSelection.plannedCoreType(environment: [:], currentCore: "Prescott", cpuFlags: flags) == "SkylakeX")
        #expect(BLASKernelSelection.plannedCoreType(environment: ["OPENBLAS_CORETYPE": "Prescott"],
                                                    currentCore: "Prescott", cpuFlags: flags) == nil)
        #expect(BLASKernelSelection.plannedCoreType(environment: ["GOTOBLAS_CORETYPE": "Core2"],
                                                    currentCore: "Core2", cpuFlags: flags) == nil)
        // The restarted process never restarts again, whatever OpenBLAS did with the request.
        #expect(BLASKernelSelection.plannedCoreType(environment: [BLASKernelSelection.markerVariable: "1"],
                                                    currentCore: "Prescott", cpuFlags: flags) == nil)
        #expect(BLASKernelSelection.plannedCoreType(environment: [:], currentCore: "SkylakeX", cpuFlags: flags) == nil)
    }
}
