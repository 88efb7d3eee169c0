// The Lagrangian relaxation of the bit-allocation knapsack: each group's lower convex hull, the LP bound
// as a function of the byte capacity, and the LP solution rounded to a feasible plan. A bound and a
// starting point for the exact solver, not a solver itself.

/// The relaxation at the problem's budget.
///
/// For a multiplier λ ≥ 0 (cost per byte), L(λ) = Σ_groups min_k (cost_k + λ·bytes_k) − λ·capacity is a
/// lower bound on every feasible plan's cost (weak duality). Its maximum over λ equals the LP relaxation
/// (each group a convex combination of its choices), which fills hull segments in order of cost saved
/// per byte and leaves at most one segment fractional; λ* is that segment's saving per byte.
public struct LagrangianRelaxation: Sendable, Equatable {
    /// max_λ L(λ) = the LP relaxation's value: no plan within the budget costs less.
    public var lowerBound: Double
    /// λ*, in cost per byte: the marginal value of one more byte of budget (0 when the cheapest-cost plan
    /// fits; 0 as well when the problem is infeasible).
    public var multiplier: Double
    /// The LP solution with its fractional segment dropped, then improved by the best single-group
    /// upgrades that still fit: a good feasible plan, not proved optimal.
    public var plan: BitPlan
}

extension BitAllocationProblem {
    /// The Lagrangian bound and greedy plan at `budgetBytes`. Throws `infeasible` if nothing fits.
    /// O(S log S) for S hull segments (≤ Σ choices).
    public func relaxation() throws -> LagrangianRelaxation {
        let p = try prepared()
        guard p.capacity >= p.minimumBytes else {
            throw BitAllocationError.infeasible(budgetBytes: budgetBytes, smallestBytes: fixedBytes + p.minimumBytes)
        }
        let segments = hullSegments(p.groups)
        let curve = RelaxationCurve(p.groups, segments) { _ in true }
        let lp = curve.value(capacity: p.capacity)
        let picks = greedyPicks(p, segments)
        let plan = p.plan(self, picks: picks, budgetBytes: budgetBytes, isOptimal: false, lowerBound: lp.value)
        return LagrangianRelaxation(lowerBound: lp.value, multiplier: lp.multiplier, plan: plan)
    }
}

/// Moving group `group` from hull point `step` to `step + 1`: `bytes` more, `saving` less cost.
struct HullSegment: Sendable {
    var group: Int
    var step: Int
    var bytes: Int
    var saving: Double
    var efficiency: Double
}

/// Every hull segment, in the LP's greedy order: saving per byte descending, then group, then step
/// (within a group efficiency strictly decreases, so a group's segments stay in hull order).
func hullSegments(_ groups: [AllocationGroup]) -> [HullSegment] {
    var segments: [HullSegment] = []
    for (g, group) in groups.enumerated() {
        for s in 0..<(group.hull.count - 1) {
            let a = group.efficient[group.hull[s]], b = group.efficient[group.hull[s + 1]]
            let db = group.bytes[b] - group.bytes[a], dc = group.cost[a] - group.cost[b]
            segments.append(HullSegment(group: g, step: s, bytes: db, saving: dc, efficiency: dc / Double(db)))
        }
    }
    segments.sort { ($0.efficiency, $1.group, $1.step) > ($1.efficiency, $0.group, $0.step) }
    return segments
}

/// The LP relaxation of a subset of groups as a function of the capacity r: +∞ below the subset's
/// minimum bytes, then convex, piecewise linear and nonincreasing, flat once every segment fits.
struct RelaxationCurve: Sendable {
    /// Σ smallest-choice bytes and their Σ cost.
    var baseBytes = 0
    var baseCost = 0.0
    /// Per segment in greedy order: bytes beyond `baseBytes` once it is filled, the cost then, and its
    /// saving per byte.
    var endBytes: [Int] = []
    var endCost: [Double] = []
    var efficiency: [Double] = []

    init(_ groups: [AllocationGroup], _ segments: [HullSegment], including: (Int) -> Bool) {
        for (g, group) in groups.enumerated() where including(g) {
            let k = group.efficient[0]
            baseBytes += group.bytes[k]
            baseCost += group.cost[k]
        }
        var b = 0, c = baseCost
        for s in segments where including(s.group) {
            b += s.bytes
            c -= s.saving
            endBytes.append(b)
            endCost.append(c)
            efficiency.append(s.efficiency)
        }
    }

    var count: Int { endBytes.count }

    /// The value at `extra` = r − baseBytes ≥ 0 bytes, given t = the first segment with endBytes > extra
    /// (count if none).
    @inline(__always)
    func value(extra: Int, segment t: Int) -> Double {
        if t == count { return endCost.last ?? baseCost }
        let startBytes = t > 0 ? endBytes[t - 1] : 0, startCost = t > 0 ? endCost[t - 1] : baseCost
        return startCost - efficiency[t] * Double(extra - startBytes)
    }

    /// The first segment with endBytes > extra, by bisection.
    func segment(extra: Int) -> Int {
        var lo = 0, hi = count
        while lo < hi {
            let mid = (lo + hi) / 2
            if endBytes[mid] > extra { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }

    /// The LP value at capacity r (+∞ if r < baseBytes) and λ*, the saving per byte of the fractional
    /// segment (0 if all fit or none is feasible).
    func value(capacity r: Int) -> (value: Double, multiplier: Double) {
        let extra = r - baseBytes
        guard extra >= 0 else { return (.infinity, 0) }
        let t = segment(extra: extra)
        return (value(extra: extra, segment: t), t < count ? efficiency[t] : 0)
    }
}

/// The LP solution rounded down (segments taken in greedy order while they fit and their group is at their
/// start point), then best single-group improvements that fit until none is left. Label index per group.
/// Requires capacity ≥ minimumBytes.
func greedyPicks(_ p: PreparedAllocation, _ segments: [HullSegment]) -> [Int] {
    var at = [Int](repeating: 0, count: p.groups.count)  // hull position per group
    var used = p.minimumBytes
    for s in segments where at[s.group] == s.step && used + s.bytes <= p.capacity {
        at[s.group] += 1
        used += s.bytes
    }
    var picks = p.groups.indices.map { p.groups[$0].efficient[p.groups[$0].hull[at[$0]]] }
    // Improvements: among all efficient choices that fit the leftover, the largest cost decrease (first on
    // ties). Each move strictly lowers the cost and raises the bytes, so the loop ends; the cap is a guard.
    for _ in 0..<(4 * p.groups.count + 4) {
        var best: (g: Int, k: Int, gain: Double)? = nil
        for (g, group) in p.groups.enumerated() {
            let cur = picks[g]
            for k in group.efficient where group.cost[k] < group.cost[cur]
                && group.bytes[k] - group.bytes[cur] <= p.capacity - used {
                let gain = group.cost[cur] - group.cost[k]
                if best == nil || gain > best!.gain { best = (g, k, gain) }
            }
        }
        guard let b = best else { break }
        used += p.groups[b.g].bytes[b.k] - p.groups[b.g].bytes[picks[b.g]]
        picks[b.g] = b.k
    }
    return picks
}
