// The input statistics of one linear layer, H = XᵀX, kept as a running sum + count so ranks merge exactly.
// Not the solver (`GPTQ`) and not the transport: a serializer sends `count` and `sum()`.
import CBLAS

/// The running sum of xᵀx over the calibration rows reaching one linear layer of `columns` inputs.
///
/// Each `accumulate` call forms xᵀx of its rows with `cblas_ssyrk` in a Float scratch (upper triangle
/// only), then adds that into a Double running sum: per-call rounding is float32, the sum over calls is
/// double, so millions of tokens do not drift. Internally only the upper triangle (row-major `i <= j`) is
/// stored; `sum()` returns the full symmetric matrix. Two hessians merge by adding sums and counts, so
/// per-rank partial sums combine exactly, and the same merge order gives the same bits.
///
/// Convention: GPTQ's Hessian of the layer-wise loss ‖WX − QX‖² over N rows is `H = 2/N · XᵀX`
/// (IST-DASLab/gptq `add_batch` keeps `H = 2/nsamples · Σ xxᵀ` up to its running rescale); `mean()` returns
/// exactly that. `diagonal` is the imatrix statistic, the mean squared activation per column (no 2).
public final class LayerHessian {
    /// Input columns (the layer's `in_features`).
    public let columns: Int
    /// Rows (tokens) accumulated so far.
    public var count: Int
    /// Upper triangle (`i <= j`, row-major, `columns × columns`) of Σ xᵀx; the lower triangle stays 0.
    private var upper: [Double]
    /// Float scratch for one `ssyrk` call, allocated on first use.
    private var scratch: [Float] = []

    public init(columns: Int) {
        precondition(columns > 0, "a layer has at least one input column")
        self.columns = columns
        self.count = 0
        self.upper = [Double](repeating: 0, count: columns * columns)
    }

    /// Restores a serialized hessian: `sum` is the full symmetric `columns × columns` Σ xᵀx (as `sum()`
    /// returns; only its upper triangle is read), `count` the rows it was accumulated over.
    public init(columns: Int, count: Int, sum: [Double]) {
        precondition(columns > 0 && count >= 0, "columns \(columns), count \(count)")
        precondition(sum.count == columns * columns, "sum has \(sum.count) values, expected \(columns)²")
        self.columns = columns
        self.count = count
        var u = [Double](repeating: 0, count: columns * columns)
        for i in 0..<columns { for j in i..<columns { u[i * columns + j] = sum[i * columns + j] } }
        self.upper = u
    }

    /// x (rows, columns) row-major: sum += xᵀx, count += rows.
    public func accumulate(_ x: UnsafePointer<Float>, rows: Int) {
        guard rows > 0 else { return }
        let n = columns
        if scratch.isEmpty { scratch = [Float](repeating: 0, count: n * n) }
        // C (n,n) upper = xᵀ x in float32 (beta 0 overwrites the previous call's values).
        scratch.withUnsafeMutableBufferPointer { c in
            cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, Int32(n), Int32(rows),
                        1, x, Int32(n), 0, c.baseAddress, Int32(n))
        }
        // Widen into the double running sum, upper triangle only.
        scratch.withUnsafeBufferPointer { c in
            upper.withUnsafeMutableBufferPointer { u in
                for i in 0..<n {
                    let row = i * n
                    for j in i..<n { u[row + j] += Double(c[row + j]) }
                }
            }
        }
        count += rows
    }

    /// Adds another hessian's partial sum (another rank, another batch): sum += other.sum, count += other.count.
    public func merge(_ other: LayerHessian) {
        precondition(other.columns == columns, "merging \(other.columns) columns into \(columns)")
        upper.withUnsafeMutableBufferPointer { u in
            other.upper.withUnsafeBufferPointer { o in
                for k in 0..<u.count { u[k] += o[k] }
            }
        }
        count += other.count
    }

    /// The upper triangle (`i <= j`, row by row, n(n+1)/2 values) as floats when every value is exactly
    /// a float — true after one `accumulate` into an empty hessian (`ssyrk` writes floats) — else nil.
    /// Half the memory of the double sum, for partials that must wait before they are merged.
    public func exactFloatUpper() -> [Float]? {
        let n = columns
        var out = [Float](repeating: 0, count: n * (n + 1) / 2)
        var k = 0
        for i in 0..<n {
            for j in i..<n {
                let d = upper[i * n + j], f = Float(d)
                guard Double(f) == d else { return nil }
                out[k] = f
                k += 1
            }
        }
        return out
    }

    /// sum += a hessian given as `exactFloatUpper()`'s triangle, count += `count`: the same double
    /// additions as `merge` with that hessian (its lower triangle is 0 and adds nothing), so the same bits.
    public func merge(floatUpper u: [Float], count rows: Int) {
        let n = columns
        precondition(u.count == n * (n + 1) / 2, "\(u.count) values for a \(n)-column triangle")
        upper.withUnsafeMutableBufferPointer { s in
            u.withUnsafeBufferPointer { f in
                var k = 0
                for i in 0..<n {
                    let row = i * n
                    for j in i..<n {
                        s[row + j] += Double(f[k])
                        k += 1
                    }
                }
            }
        }
        count += rows
    }

    /// Σ xᵀx as a full symmetric `columns × columns` row-major matrix.
    public func sum() -> [Double] {
        let n = columns
        var s = upper
        for i in 0..<n { for j in 0..<i { s[i * n + j] = upper[j * n + i] } }
        return s
    }

    /// GPTQ's Hessian `H = 2/count · XᵀX`, full symmetric, in Float (all zeros before any row).
    public func mean() -> [Float] {
        let f = count > 0 ? 2 / Double(count) : 0
        return sum().map { Float($0 * f) }
    }

    /// The imatrix statistic: mean of x_j² over the rows, per column (`sum_jj / count`, no factor 2).
    public var diagonal: [Float] {
        let f = count > 0 ? 1 / Double(count) : 0
        return (0..<columns).map { Float(upper[$0 * columns + $0] * f) }
    }
}
