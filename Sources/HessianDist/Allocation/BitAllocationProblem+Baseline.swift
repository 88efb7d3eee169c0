// A size-only baseline for the bit allocation: the largest uniform type that fits, then single-rung
// upgrades in name order while they fit. It ignores every cost, so comparing its cost with `solve`'s at
// the same budget measures what the sensitivities buy. Not an optimiser.

extension BitAllocationProblem {
    /// Labels from smallest to largest type, for `sizeOnlyBaseline`: each label's Σ bytes over the items
    /// offering it divided by those items' Σ largest-choice bytes (a bytes-weighted relative bits per
    /// weight: Q2_K < Q3_K < … < F16 whatever the tensor shapes), ties by label.
    public func defaultLadder() -> [String] {
        var bytes: [String: Double] = [:], scale: [String: Double] = [:]
        for item in items {
            let largest = Double(item.choices.map(\.bytes).max() ?? 0)
            for c in item.choices {
                bytes[c.label, default: 0] += Double(c.bytes)
                scale[c.label, default: 0] += largest
            }
        }
        func ratio(_ l: String) -> Double { scale[l]! > 0 ? bytes[l]! / scale[l]! : 0 }
        return bytes.keys.sorted { (ratio($0), $0) < (ratio($1), $1) }
    }

    /// The plan a size-only rule picks at `budgetBytes`, respecting ties and pins. Level ℓ gives every group
    /// its offered label with the highest rung ≤ ℓ on `ladder` (its lowest rung if none is ≤ ℓ); the highest
    /// level that fits is taken, then groups in name order move up one offered rung while the budget allows.
    /// Groups offering no ladder label keep their smallest choice. `isOptimal` is false (nothing is proved);
    /// `lowerBound` is the Lagrangian bound at the budget, as for `solve`.
    /// - Parameter ladder: labels smallest type first; `defaultLadder()` when nil.
    /// - Throws: `.infeasible` naming the smallest baseline file (which may exceed `solve`'s smallest when
    ///   the lowest rung is not every tensor's smallest choice), `.invalidLadder`, malformed input.
    public func sizeOnlyBaseline(ladder: [String]? = nil) throws -> BitPlan {
        let ladder = ladder ?? defaultLadder()
        guard !ladder.isEmpty else { throw BitAllocationError.invalidLadder("empty") }
        var rung: [String: Int] = [:]
        for (r, l) in ladder.enumerated() {
            guard rung.updateValue(r, forKey: l) == nil else { throw BitAllocationError.invalidLadder("\(l) listed twice") }
        }
        let p = try prepared()
        // Per group, its offered ladder labels as (rung, label index), rung ascending.
        let offered: [[(rung: Int, k: Int)]] = p.groups.map { group in
            group.labels.indices.compactMap { k in rung[group.labels[k]].map { ($0, k) } }.sorted { $0.rung < $1.rung }
        }
        func pick(_ g: Int, level: Int) -> Int {
            guard let lowest = offered[g].first else { return p.groups[g].efficient[0] }
            return offered[g].last { $0.rung <= level }?.k ?? lowest.k
        }
        func bytes(level: Int) -> Int { p.groups.indices.reduce(0) { $0 + p.groups[$1].bytes[pick($1, level: level)] } }

        guard let level = ladder.indices.last(where: { bytes(level: $0) <= p.capacity }) else {
            let smallest = ladder.indices.map { bytes(level: $0) }.min()!
            throw BitAllocationError.infeasible(budgetBytes: budgetBytes, smallestBytes: fixedBytes + smallest)
        }
        var picks = p.groups.indices.map { pick($0, level: level) }
        var used = bytes(level: level)
        for g in p.groups.indices {
            let group = p.groups[g]
            guard let at = offered[g].firstIndex(where: { $0.k == picks[g] }), at + 1 < offered[g].count else { continue }
            let next = offered[g][at + 1].k
            let grow = group.bytes[next] - group.bytes[picks[g]]
            if grow <= p.capacity - used { picks[g] = next; used += grow }
        }
        let bound = RelaxationCurve(p.groups, hullSegments(p.groups)) { _ in true }.value(capacity: p.capacity).value
        return p.plan(self, picks: picks, budgetBytes: budgetBytes, isOptimal: false, lowerBound: bound)
    }
}
