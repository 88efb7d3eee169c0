import Testing
@testable import HessianDist

@Suite struct GGMLTypeTests {
    /// Byte sizes from ggml's `type_traits` table (ggml.c): a wrong one corrupts every offset after it.
    @Test func sizesMatchGGML() {
        let expected: [GGMLType: (Int, Int)] = [
            .f32: (1, 4), .f16: (1, 2), .bf16: (1, 2), .q4_0: (32, 18), .q4_1: (32, 20), .q5_0: (32, 22),
            .q5_1: (32, 24), .q8_0: (32, 34), .q8_1: (32, 36), .q2_K: (256, 84), .q3_K: (256, 110),
            .q4_K: (256, 144), .q5_K: (256, 176), .q6_K: (256, 210), .q8_K: (256, 292),
            .iq4_nl: (32, 18), .iq4_xs: (256, 136), .mxfp4: (32, 17),
        ]
        for t in GGMLType.allCases {
            let e = expected[t]!
            #expect(t.blockSize == e.0 && t.typeSize == e.1, "\(t)")
        }
        #expect(GGMLType.q4_0.bitsPerWeight == 4.5)
        #expect(GGMLType.q6_K.bitsPerWeight == 6.5625)
        #expect(GGMLType.q4_0.byteCount(elements: 33) == nil)
        #expect(GGMLType(name: "q4_k") == .q4_K)
    }
}
