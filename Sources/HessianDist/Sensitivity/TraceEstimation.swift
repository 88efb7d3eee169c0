// The numerics of per-tensor sensitivity statistics: running means with standard errors, Hutchinson's
// trace estimator with PyHessian's stop rule, Rademacher probes, and a dense central-difference
// Hessian and a symmetric eigensolver for checking them on tiny problems. Not the model: gradients come
// from the caller.
import CBLAS

/// Mean and standard error of a stream of samples (Welford's update, in Double).
public struct RunningMean: Sendable, Equatable {
    public private(set) var count = 0
    public private(set) var mean = 0.0
    private var m2 = 0.0

    public init() {}

    public mutating func add(_ x: Double) {
        count += 1
        let d = x - mean
        mean += d / Double(count)
        m2 += d * (x - mean)
    }

    /// Unbiased sample variance (0 below two samples).
    public var variance: Double { count > 1 ? m2 / Double(count - 1) : 0 }
    /// Standard error of the mean, √(variance / n); infinite below two samples (nothing is known yet).
    public var standardError: Double { count > 1 ? (variance / Double(count)).squareRoot() : .infinity }
}

/// One tensor's estimated trace (of the loss Hessian, or of the empirical Fisher).
public struct TraceEstimate: Sendable, Equatable, Codable {
    public var name: String
    public var mean: Double
    public var standardError: Double
    /// Probes (Hutchinson) or sequences (Fisher) averaged.
    public var samples: Int
    /// Whether the stop rule was met before the sample budget ran out.
    public var converged: Bool
    /// For a block finer than the tensor: its output rows (nil: the whole tensor).
    public var rows: Range<Int>? = nil

    public init(name: String, mean: Double, standardError: Double, samples: Int, converged: Bool) {
        self.name = name
        self.mean = mean
        self.standardError = standardError
        self.samples = samples
        self.converged = converged
    }
}

/// Hutchinson's estimator of tr(H_bb) for every tensor b at once: for a Rademacher probe v over all
/// parameters (E[v vᵀ] = I), E[v_bᵀ (H v)_b] = tr(H_bb), because the cross terms v_bᵀ H_bc v_c (c ≠ b)
/// have mean zero. So one Hessian-vector product gives one sample for every tensor.
public struct HutchinsonTrace: Sendable {
    public struct Options: Sendable, Equatable {
        /// PyHessian's default `maxIter`.
        public var maxProbes = 100
        /// PyHessian's rule and default: a tensor stops once its running mean moves by less than
        /// `relativeTolerance` · (|previous mean| + 1e-6) on a new probe.
        public var relativeTolerance = 1e-3
        /// Probes before the rule may fire. PyHessian has none; its rule can fire on one probe that
        /// lands near the mean, and fewer than ~10 samples give a standard error worth nothing.
        public var minProbes = 10
        public init(maxProbes: Int = 100, relativeTolerance: Double = 1e-3, minProbes: Int = 10) {
            self.maxProbes = maxProbes
            self.relativeTolerance = relativeTolerance
            self.minProbes = minProbes
        }
    }

    public let names: [String]
    public let options: Options
    public private(set) var stats: [RunningMean]
    public private(set) var converged: [Bool]
    public private(set) var probes = 0

    public init(names: [String], options: Options = Options()) {
        precondition(options.maxProbes >= 1 && options.minProbes >= 1)
        self.names = names
        self.options = options
        stats = Array(repeating: RunningMean(), count: names.count)
        converged = Array(repeating: false, count: names.count)
    }

    /// Adds one probe's samples v_bᵀ (H v)_b, one per tensor in `names` order. Tensors that already
    /// met the stop rule keep their estimate (their samples are ignored), as in PyHessian's per-module loop.
    public mutating func add(_ samples: [Double]) {
        precondition(samples.count == names.count, "\(samples.count) samples for \(names.count) tensors")
        probes += 1
        for b in names.indices where !converged[b] {
            let previous = stats[b].mean
            stats[b].add(samples[b])
            if stats[b].count >= options.minProbes,
               abs(stats[b].mean - previous) / (abs(previous) + 1e-6) < options.relativeTolerance {
                converged[b] = true
            }
        }
    }

    /// Whether another probe is needed: some tensor is still open and the budget is not spent.
    public var needsProbe: Bool { probes < options.maxProbes && converged.contains(false) }

    public var estimates: [TraceEstimate] {
        names.indices.map {
            TraceEstimate(name: names[$0], mean: stats[$0].mean, standardError: stats[$0].standardError,
                          samples: stats[$0].count, converged: converged[$0])
        }
    }
}

/// Fills `v` (count) with independent ±1, 64 signs per 64-bit draw of `rng`.
public func fillRademacher<R: RandomNumberGenerator>(_ v: UnsafeMutablePointer<Float>, count: Int, using rng: inout R) {
    var i = 0
    while i < count {
        var bits = rng.next()
        for _ in 0..<min(64, count - i) {
            v[i] = bits & 1 == 0 ? 1 : -1
            bits >>= 1
            i += 1
        }
    }
}

/// Σ a·b over n floats, accumulated in Double (a per-tensor probe sample or a squared norm).
public func dotDouble(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Double {
    // Blocks of 64 summed in Float with SIMD, then in Double: exact enough and not 30x slower.
    var total = 0.0, i = 0
    while i + 64 <= n {
        total += Double(dot(a + i, b + i, 64))
        i += 64
    }
    if i < n { total += Double(dot(a + i, b + i, n - i)) }
    return total
}

/// The dense Hessian (n,n) of a function by central differences of its gradient, column by column:
/// H[:, j] = (g(x + s e_j) − g(x − s e_j)) / (2s), s = the Float step actually taken for `epsilon`.
/// `x` is perturbed in place and restored exactly; `gradient` writes ∇f at the current x into its
/// argument (n Doubles). The truncation error of a column is (ε²/6)·∂³g/∂x_j³, exact zero for a
/// quadratic. For checking estimators on problems of a few hundred parameters only (2n gradients).
public func centralDifferenceHessian(x: UnsafeMutablePointer<Float>, n: Int, epsilon: Float,
                                     gradient: (UnsafeMutablePointer<Double>) throws -> Void) rethrows -> [Double] {
    var H = [Double](repeating: 0, count: n * n)
    var gp = [Double](repeating: 0, count: n), gm = gp
    for j in 0..<n {
        let old = x[j], up = old + epsilon, down = old - epsilon
        x[j] = up
        try gp.withUnsafeMutableBufferPointer { try gradient($0.baseAddress!) }
        x[j] = down
        try gm.withUnsafeMutableBufferPointer { try gradient($0.baseAddress!) }
        x[j] = old
        let step = Double(up) - Double(down)
        for i in 0..<n { H[i * n + j] = (gp[i] - gm[i]) / step }
    }
    return H
}

/// Eigenvalues, ascending, of a symmetric (n,n) matrix (row-major; LAPACK dsyev reads one triangle, so
/// an asymmetric input is read as its lower triangle). Nil if LAPACK reports no convergence.
public func symmetricEigenvalues(_ a: [Double], n: Int) -> [Double]? {
    precondition(a.count == n * n, "\(a.count) entries for \(n)×\(n)")
    var m = a, w = [Double](repeating: 0, count: n)
    // Row-major lower = column-major upper: either way one triangle of the same symmetric matrix.
    let info = LAPACKE_dsyev(LAPACK_COL_MAJOR, CChar(UInt8(ascii: "N")), CChar(UInt8(ascii: "U")), Int32(n), &m, Int32(n), &w)
    return info == 0 ? w : nil
}
