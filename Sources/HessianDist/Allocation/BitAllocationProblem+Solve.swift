// The exact bit-allocation solver and the exact Pareto frontier: a Nemhauser–Ullmann sweep over the
// groups that keeps only non-dominated (bytes, cost) partial plans, pruned by capacity and, for `solve`,
// by the LP bound of the groups still to come against a greedy plan's cost. Not the bound itself
// (`+Relaxation.swift`) and not the size-only baseline.

extension BitAllocationProblem {
    /// Default cap on the partial plans kept per stage of `solve`'s sweep. HAWQ-like problems (sensitivities
    /// spread over decades, costs measured per type) keep a few hundred per stage and never reach it.
    /// Degenerate ones — equal sensitivity for every tensor, so every tensor saves the same cost per byte
    /// and the problem is subset-sum — defeat any LP bound and stop here: 2¹⁴ keeps a 300×8 solve under a
    /// second (≈ 40 MB of traceback), with plans 3e-8 – 3e-4 (relative) above the Lagrangian bound in our
    /// tests, which bounds their distance from the optimum; `isOptimal` is false for them.
    public static let defaultMaxStates = 1 << 14

    /// The minimum-cost plan with `totalBytes ≤ budgetBytes`; among plans of equal cost the one with fewer
    /// bytes, then the one whose first differing item (by name) takes an earlier choice. So the plan
    /// depends on the items, not on their order or the order of `ties`.
    ///
    /// Algorithm: groups (tie groups merged, pins applied, dominated choices dropped) are merged one by one
    /// in reverse name order into a list of partial plans, bytes ascending and cost strictly descending
    /// (every other partial plan is dominated: some kept one has ≤ bytes and ≤ cost, so it completes at
    /// least as well). A partial plan is dropped if its bytes plus the smallest bytes of the groups still
    /// to come exceed the budget, or if its cost plus the LP bound of those groups at the bytes left
    /// exceeds the cost of the greedy plan from `relaxation()` (plus 1e-9 of the cost scale for rounding:
    /// the bounds are valid, so no optimal plan is lost). The last survivor is the optimum.
    /// Time O(Σ_stages states · choices) plus O(groups · segments) for the bounds. The state count is small
    /// when few groups sit near the LP's threshold λ* (HAWQ-like 300×8 problems: at most a few hundred per
    /// stage, ~10 ms); MCKP is NP-hard, and subset-sum-like inputs hit `maxStates` (see `defaultMaxStates`).
    ///
    /// - Parameter maxStates: partial plans kept per stage. Beyond it the ones with the lowest bound are
    ///   kept, and `isOptimal` is true only if every dropped one's bound is above the plan's cost or the
    ///   plan meets the Lagrangian bound. The plan is never worse than `relaxation().plan`.
    /// - Throws: `BitAllocationError` for malformed input, `.infeasible` naming the smallest file size.
    /// - Costs are added in Double; the plan is exactly optimal when those sums are exact (e.g. integer or
    ///   dyadic costs) and otherwise optimal up to their rounding (~1e-16 of the total per addition).
    public func solve(maxStates: Int = defaultMaxStates) throws -> BitPlan {
        precondition(maxStates >= 1, "maxStates \(maxStates)")
        let p = try prepared()
        guard p.capacity >= p.minimumBytes else {
            throw BitAllocationError.infeasible(budgetBytes: budgetBytes, smallestBytes: fixedBytes + p.minimumBytes)
        }
        let segments = hullSegments(p.groups)
        let bound = RelaxationCurve(p.groups, segments) { _ in true }.value(capacity: p.capacity).value
        let greedy = greedyPicks(p, segments)
        let upper = p.cost(greedy)
        let slack = 1e-9 * p.costScale
        let sweep = try paretoSweep(p, segments, upper: upper + slack, maxStates: maxStates, throwAtLimit: false)
        // The sweep's last plan, unless the state cap cost it more than the greedy plan (costs compared as
        // `plan` sums them, so an optimum equal to the greedy plan is not lost to rounding).
        var picks = greedy, cost = upper
        if let last = sweep.cost.indices.last {
            let found = sweep.picks(last), c = p.cost(found)
            if c <= upper { picks = found; cost = c }
        }
        // Proved if nothing was cut at the state cap, if every cut state's bound is above the plan's cost,
        // or if the plan meets the Lagrangian bound (degenerate, subset-sum-like problems end here or not
        // at all: every state's bound is nearly the same, so the cap, not the bound, limits the sweep).
        let proved = sweep.droppedBound == .infinity || cost <= sweep.droppedBound - slack || cost <= bound + slack
        return p.plan(self, picks: picks, budgetBytes: budgetBytes, isOptimal: proved, lowerBound: bound)
    }

    /// Every Pareto-optimal plan with `totalBytes ≤ budgetBytes`: bytes strictly ascending, cost strictly
    /// descending, each the exact `solve` at a budget equal to its own `totalBytes` (which is what its
    /// `budgetBytes` is set to; it stays optimal up to the next point's bytes − 1). Exact, with the same
    /// tie rules as `solve`, but without a cost bound the sweep keeps every non-dominated partial plan:
    /// the frontier can grow to millions of points on real models (distinct byte sums), so this is for
    /// small problems or a few dozen groups. For a bits-per-weight sweep use `paretoFrontier(budgets:)`.
    /// - Throws: `.frontierTooLarge` when a stage exceeds `maxPoints` partial plans, `.infeasible`.
    public func paretoFrontier(maxPoints: Int = 100_000) throws -> [BitPlan] {
        precondition(maxPoints >= 1, "maxPoints \(maxPoints)")
        let p = try prepared()
        guard p.capacity >= p.minimumBytes else {
            throw BitAllocationError.infeasible(budgetBytes: budgetBytes, smallestBytes: fixedBytes + p.minimumBytes)
        }
        let segments = hullSegments(p.groups)
        let curve = RelaxationCurve(p.groups, segments) { _ in true }
        let sweep = try paretoSweep(p, segments, upper: nil, maxStates: maxPoints, throwAtLimit: true)
        return sweep.cost.indices.map { s in
            let budget = fixedBytes + sweep.bytes[s]
            return p.plan(self, picks: sweep.picks(s), budgetBytes: budget, isOptimal: true,
                          lowerBound: curve.value(capacity: sweep.bytes[s]).value)
        }
    }

    /// `solve` at each budget (total file bytes), in the given order: each plan is a point of the Pareto
    /// frontier (minimum cost at its budget, then minimum bytes). Budgets whose optima coincide give equal
    /// plans apart from `budgetBytes` and `lowerBound`. Cost: one `solve` per budget.
    /// - Throws: `.infeasible` for the first budget below the smallest file (see `usefulByteRange`).
    public func paretoFrontier(budgets: [Int], maxStates: Int = defaultMaxStates) throws -> [BitPlan] {
        try budgets.map { b in
            var q = self
            q.budgetBytes = b
            return try q.solve(maxStates: maxStates)
        }
    }

    /// Total file sizes worth sweeping: from the smallest file (every group at its smallest choice) to the
    /// size of the cheapest-cost plan (every group at its lowest-cost choice, fewest bytes on ties). Below
    /// the lower end nothing fits; above the upper end the plan no longer changes.
    public func usefulByteRange() throws -> ClosedRange<Int> {
        let p = try prepared()
        let top = p.groups.reduce(0) { $0 + $1.bytes[$1.efficient.last!] }
        return (fixedBytes + p.minimumBytes)...(fixedBytes + top)
    }
}

/// The sweep's result: the last stage's partial plans (= complete plans) and the traceback.
struct ParetoSweep {
    /// Complete plans: allocatable bytes ascending, cost strictly descending.
    var bytes: [Int] = []
    var cost: [Double] = []
    /// Per stage (stage i merges group n−1−i): each state's parent index in the previous stage and its
    /// label index in the group merged.
    var parents: [[Int32]] = []
    var labels: [[Int32]] = []
    /// The smallest lower bound among partial plans dropped at the state cap (+∞ if none was).
    var droppedBound = Double.infinity

    /// Label index per group of final state `s`.
    func picks(_ s: Int) -> [Int] {
        let n = labels.count
        var picks = [Int](repeating: 0, count: n), s = s
        for stage in stride(from: n - 1, through: 0, by: -1) {
            picks[n - 1 - stage] = Int(labels[stage][s])
            s = Int(parents[stage][s])
        }
        return picks
    }
}

/// The Nemhauser–Ullmann sweep. Partial plans whose bytes leave too little for the groups to come are
/// dropped; with `upper`, so are those whose cost plus the LP bound of the groups to come exceeds it.
/// Tie-break: groups are merged from the last (by name) to the first, and of two partial plans with equal
/// (bytes, cost) the one with the lower label index in the group just merged is kept. They always differ
/// there (one parent plus one label gives distinct bytes for distinct parents, as a stage's bytes are
/// distinct), and since both complete identically, that group is where their completions first differ in
/// name order: so the kept one completes to the plan that is lexicographically first.
/// Per stage O(choices · states) (plus O(choices² · states) for the pairwise merges, far less in practice
/// as each merge drops dominated states), and O(states) for a cut at `maxStates` (quickselect).
func paretoSweep(_ p: PreparedAllocation, _ segments: [HullSegment], upper: Double?, maxStates: Int,
                 throwAtLimit: Bool) throws -> ParetoSweep {
    var out = ParetoSweep()
    let n = p.groups.count
    // The current stage: bytes strictly ascending, cost strictly descending.
    var curBytes: [Int] = [0], curCost: [Double] = [0]
    // Scratch: the merged list so far, the candidates of one choice, the merge output.
    var mBytes: [Int] = [], mCost: [Double] = [], mParent: [Int32] = [], mLabel: [Int32] = []
    var cBytes: [Int] = [], cCost: [Double] = [], cParent: [Int32] = []
    var oBytes: [Int] = [], oCost: [Double] = [], oParent: [Int32] = [], oLabel: [Int32] = []

    for g in stride(from: n - 1, through: 0, by: -1) {
        let group = p.groups[g]
        let rest = RelaxationCurve(p.groups, segments) { $0 < g }  // the groups still to come
        let room = p.capacity - rest.baseBytes
        mBytes.removeAll(keepingCapacity: true); mCost.removeAll(keepingCapacity: true)
        mParent.removeAll(keepingCapacity: true); mLabel.removeAll(keepingCapacity: true)

        for k in group.efficient {
            let b = group.bytes[k], c = group.cost[k], label = Int32(k)
            // Candidates: current states plus choice k, bytes ascending, so the capacity cut is a prefix and
            // the bound's segment pointer only moves down as the bytes left shrink.
            cBytes.removeAll(keepingCapacity: true); cCost.removeAll(keepingCapacity: true)
            cParent.removeAll(keepingCapacity: true)
            var t = rest.count
            for s in curBytes.indices {
                let nb = curBytes[s] + b, extra = room - nb
                if extra < 0 { break }
                let nc = curCost[s] + c
                if let upper {
                    while t > 0 && rest.endBytes[t - 1] > extra { t -= 1 }
                    if nc + rest.value(extra: extra, segment: t) > upper { continue }
                }
                cBytes.append(nb); cCost.append(nc); cParent.append(Int32(s))
            }
            // Merge into the list so far by (bytes, cost, label); keep a state only if it is strictly cheaper
            // than everything before it.
            oBytes.removeAll(keepingCapacity: true); oCost.removeAll(keepingCapacity: true)
            oParent.removeAll(keepingCapacity: true); oLabel.removeAll(keepingCapacity: true)
            var i = 0, j = 0, best = Double.infinity
            while i < mBytes.count || j < cBytes.count {
                let takeOld: Bool
                if j == cBytes.count { takeOld = true }
                else if i == mBytes.count { takeOld = false }
                else if mBytes[i] != cBytes[j] { takeOld = mBytes[i] < cBytes[j] }
                else if mCost[i] != cCost[j] { takeOld = mCost[i] < cCost[j] }
                else { takeOld = mLabel[i] < label }  // never equal: see the tie-break above
                if takeOld {
                    if mCost[i] < best {
                        best = mCost[i]
                        oBytes.append(mBytes[i]); oCost.append(mCost[i]); oParent.append(mParent[i]); oLabel.append(mLabel[i])
                    }
                    i += 1
                } else {
                    if cCost[j] < best {
                        best = cCost[j]
                        oBytes.append(cBytes[j]); oCost.append(cCost[j]); oParent.append(cParent[j]); oLabel.append(label)
                    }
                    j += 1
                }
            }
            swap(&mBytes, &oBytes); swap(&mCost, &oCost); swap(&mParent, &oParent); swap(&mLabel, &oLabel)
        }

        if mBytes.count > maxStates {
            if throwAtLimit { throw BitAllocationError.frontierTooLarge(points: mBytes.count, limit: maxStates) }
            // Keep the maxStates states with the lowest bound (equal bounds: lower index), in order: a subset
            // of a Pareto list is one.
            var lb = [Double](repeating: 0, count: mBytes.count)
            var t = rest.count
            for s in mBytes.indices {
                let extra = room - mBytes[s]
                while t > 0 && rest.endBytes[t - 1] > extra { t -= 1 }
                lb[s] = mCost[s] + rest.value(extra: extra, segment: t)
            }
            var scratch = lb
            let threshold = kthSmallest(&scratch, maxStates - 1)
            var equalKept = maxStates - lb.reduce(0) { $0 + ($1 < threshold ? 1 : 0) }
            var kept = 0
            for s in mBytes.indices {
                if lb[s] < threshold || (lb[s] == threshold && equalKept > 0) {
                    if lb[s] == threshold { equalKept -= 1 }
                    mBytes[kept] = mBytes[s]; mCost[kept] = mCost[s]; mParent[kept] = mParent[s]; mLabel[kept] = mLabel[s]
                    kept += 1
                } else {
                    out.droppedBound = min(out.droppedBound, lb[s])
                }
            }
            mBytes.removeLast(mBytes.count - kept); mCost.removeLast(mCost.count - kept)
            mParent.removeLast(mParent.count - kept); mLabel.removeLast(mLabel.count - kept)
        }

        out.parents.append(mParent)
        out.labels.append(mLabel)
        curBytes = mBytes; curCost = mCost
        if curBytes.isEmpty { break }
    }
    if out.labels.count == n {
        out.bytes = curBytes
        out.cost = curCost
    }
    return out
}

/// The k-th smallest value (0-based) of `a`, which is reordered: Hoare's selection with a median-of-three
/// pivot, expected O(count).
func kthSmallest(_ a: inout [Double], _ k: Int) -> Double {
    precondition(k >= 0 && k < a.count, "k \(k) of \(a.count)")
    var lo = 0, hi = a.count - 1
    while lo < hi {
        let mid = lo + (hi - lo) / 2
        if a[mid] < a[lo] { a.swapAt(mid, lo) }
        if a[hi] < a[lo] { a.swapAt(hi, lo) }
        if a[hi] < a[mid] { a.swapAt(hi, mid) }
        let pivot = a[mid]
        var i = lo, j = hi
        while i <= j {
            while a[i] < pivot { i += 1 }
            while a[j] > pivot { j -= 1 }
            if i <= j { a.swapAt(i, j); i += 1; j -= 1 }
        }
        if k <= j { hi = j } else if k >= i { lo = i } else { return a[k] }
    }
    return a[k]
}
