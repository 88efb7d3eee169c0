// Calibration samples: seeded windows of a tokenized text, as the GPTQ reference's `get_wikitext2`
// draws them (uniform start in [0, len − seqlen − 1]). Not data-free sampling from the model.

/// SplitMix64: tiny, seeded, and the same on every platform and rank.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

public struct CalibrationSet: Sendable {
    /// Each sample is `seqlen` token ids.
    public let samples: [[Int32]]
    public let seqlen: Int

    public init(samples: [[Int32]]) {
        self.samples = samples
        seqlen = samples.first?.count ?? 0
    }

    public var tokenCount: Int { samples.count * seqlen }

    /// `count` windows of `seqlen` tokens starting at seeded uniform offsets of `tokens`.
    public static func windows(of tokens: [Int32], count: Int, seqlen: Int, seed: UInt64) throws -> CalibrationSet {
        guard count >= 1, seqlen >= 2 else {
            throw CalibrationError.invalid("--nsamples \(count) and --seqlen \(seqlen): expected >= 1 and >= 2")
        }
        guard tokens.count > seqlen + 1 else {
            throw CalibrationError.invalid("the calibration text has \(tokens.count) tokens; --seqlen \(seqlen) needs more than \(seqlen + 1)")
        }
        var rng = SeededRandom(seed: seed)
        let span = UInt64(tokens.count - seqlen - 1)
        return CalibrationSet(samples: (0..<count).map { _ in
            let start = Int(rng.next() % (span + 1))
            return Array(tokens[start..<(start + seqlen)])
        })
    }
}

public enum CalibrationError: Error, CustomStringConvertible {
    case invalid(String)
    public var description: String {
        switch self { case .invalid(let s): return s }
    }
}
