import Testing
@testable import HessianDist

/// When OpenBLAS's kernel choice is overridden: only when it is narrower than what the CPU supports.
@Suite struct BLASCoreTests {
    static let avx512: Set<String> = ["sse3", "avx", "avx2", "fma", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"]

    @Test func levelsFromFlags() {
        #expect(BLASCore.level(cpuFlags: Self.avx512) == .avx512)
        // SkylakeX kernels use VL and BW: an AVX-512F-only CPU (Knights Landing) gets AVX2 kernels.
        #expect(BLASCore.level(cpuFlags: ["avx", "avx2", "fma", "avx512f", "avx512cd"]) == .avx2)
        #expect(BLASCore.level(cpuFlags: ["avx", "avx2"]) == .avx)  // AVX2 kernels need FMA
        #expect(BLASCore.level(cpuFlags: ["sse2", "sse3"]) == .sse)
        #expect(BLASCore.level(cpuFlags: []) == .sse)
    }

    @Test func theFallbackOnANewXeonIsOverridden() {
        // The case measured in BENCHMARKS.md: OpenBLAS 0.3.21 on an AVX-512 Xeon it does not know.
        #expect(BLASCore.betterCoreType(current: "Prescott", cpuFlags: Self.avx512) == "SkylakeX")
        #expect(BLASCore.betterCoreType(current: "Haswell", cpuFlags: Self.avx512) == "SkylakeX")
        #expect(BLASCore.betterCoreType(current: "Core2", cpuFlags: ["avx", "avx2", "fma"]) == "Haswell")
        #expect(BLASCore.betterCoreType(current: "Nehalem", cpuFlags: ["avx"]) == "Sandybridge")
    }

    @Test func aChoiceAsWideAsTheCPUStands() {
        #expect(BLASCore.betterCoreType(current: "Cooperlake", cpuFlags: Self.avx512) == nil)
        #expect(BLASCore.betterCoreType(current: "SkylakeX", cpuFlags: Self.avx512) == nil)
        #expect(BLASCore.betterCoreType(current: "Zen", cpuFlags: ["avx", "avx2", "fma"]) == nil)
        #expect(BLASCore.betterCoreType(current: "Prescott", cpuFlags: ["sse3"]) == nil)
        // Wider than the flags say (a user's OPENBLAS_CORETYPE): never narrowed.
        #expect(BLASCore.betterCoreType(current: "SkylakeX", cpuFlags: ["avx", "avx2", "fma"]) == nil)
        // Names the table does not know (other architectures, newer families) are left alone.
        #expect(BLASCore.betterCoreType(current: "ARMV8", cpuFlags: Self.avx512) == nil)
        #expect(BLASCore.betterCoreType(current: "neoversen1", cpuFlags: []) == nil)
    }

    @Test func namesMatchWhatOpenBLASReports() {
        // openblas_get_corename spells them with capitals; the table is case-blind.
        #expect(BLASCore.level(ofCore: "SapphireRapids") == .avx512)
        #expect(BLASCore.level(ofCore: "sandybridge") == .avx)
        #expect(!BLASCore.name.isEmpty)
    }
}
