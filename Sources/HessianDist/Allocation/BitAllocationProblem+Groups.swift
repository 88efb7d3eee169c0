// Validation and the reduced problem every solver works on: tie groups merged into combined items,
// pins applied, dominated choices removed, each group's lower convex hull. Not a solver.

/// One combined item: a tie group (or a single item), with its candidate labels and summed bytes/costs.
struct AllocationGroup: Sendable {
    /// Item indices into `BitAllocationProblem.items`, sorted by name.
    var members: [Int]
    /// The smallest member name: groups are ordered by it, and it decides ties between plans.
    var name: String
    /// Candidate labels in the first member's choice order (after ties and pins). A label's index here
    /// is its "order": the tie-break among equal plans.
    var labels: [String]
    /// Per label, Σ member bytes and Σ member costs (summed in member order).
    var bytes: [Int]
    var cost: [Double]
    /// Indices into `labels` of the non-dominated choices, bytes strictly ascending and cost strictly
    /// descending. A choice is dropped when another has ≤ bytes and ≤ cost and is strictly better in one,
    /// or is identical and earlier: the dropped one can never be in the plan `solve` returns.
    var efficient: [Int]
    /// Positions into `efficient` of the lower convex hull of (bytes, cost), from the smallest choice.
    /// Consecutive hull points have strictly decreasing cost saved per extra byte.
    var hull: [Int]
}

/// The validated, reduced problem.
struct PreparedAllocation: Sendable {
    /// Groups in name order.
    var groups: [AllocationGroup]
    /// Item index → group index.
    var groupOf: [Int]
    /// Bytes available to the groups: budgetBytes − fixedBytes (may be negative).
    var capacity: Int
    /// Σ over groups of the smallest choice's bytes.
    var minimumBytes: Int
    /// Σ over groups of the largest efficient cost: the magnitude of every partial sum the solvers form,
    /// used to size the rounding slack of bound comparisons.
    var costScale: Double

    /// Σ cost of one label index per group, summed as `plan` sums it.
    func cost(_ picks: [Int]) -> Double {
        var c = 0.0
        for (g, group) in groups.enumerated() { c += group.cost[picks[g]] }
        return c
    }

    /// A plan from one label index per group, made for `budgetBytes`.
    func plan(_ problem: BitAllocationProblem, picks: [Int], budgetBytes: Int, isOptimal: Bool,
              lowerBound: Double) -> BitPlan {
        var labels: [String: String] = [:]
        labels.reserveCapacity(problem.items.count)
        var bytes = problem.fixedBytes, cost = 0.0
        for (g, group) in groups.enumerated() {
            let k = picks[g]
            for m in group.members { labels[problem.items[m].name] = group.labels[k] }
            bytes += group.bytes[k]
            cost += group.cost[k]
        }
        return BitPlan(labels: labels, totalBytes: bytes, totalCost: cost, budgetBytes: budgetBytes,
                       isOptimal: isOptimal, lowerBound: lowerBound)
    }
}

extension BitAllocationProblem {
    /// Checks the problem and builds the groups. Throws `BitAllocationError` for malformed input; an
    /// infeasible budget is not an error here (`capacity < minimumBytes`).
    func prepared() throws -> PreparedAllocation {
        guard fixedBytes >= 0 else { throw BitAllocationError.negativeFixedBytes(fixedBytes) }
        var index: [String: Int] = [:]
        var total = fixedBytes
        for (i, item) in items.enumerated() {
            guard index.updateValue(i, forKey: item.name) == nil else {
                throw BitAllocationError.duplicateItem(name: item.name)
            }
            guard !item.choices.isEmpty else { throw BitAllocationError.noChoices(item: item.name) }
            var seen = Set<String>(), largest = 0
            for c in item.choices {
                guard seen.insert(c.label).inserted else {
                    throw BitAllocationError.duplicateLabel(item: item.name, label: c.label)
                }
                guard c.bytes >= 0 else {
                    throw BitAllocationError.negativeBytes(item: item.name, label: c.label, bytes: c.bytes)
                }
                guard c.cost.isFinite, c.cost >= 0 else {
                    throw BitAllocationError.invalidCost(item: item.name, label: c.label, cost: c.cost)
                }
                largest = max(largest, c.bytes)
            }
            if let p = item.pinned, !seen.contains(p) {
                throw BitAllocationError.unknownPin(item: item.name, label: p, available: item.choices.map(\.label))
            }
            // Every sum the solvers form is at most fixedBytes + Σ largest, so checking that one suffices.
            let (sum, overflow) = total.addingReportingOverflow(largest)
            guard !overflow else { throw BitAllocationError.bytesOverflow(item: item.name) }
            total = sum
        }

        // Union-find over items; overlapping ties merge.
        var parent = Array(items.indices)
        func root(_ i: Int) -> Int {
            var i = i
            while parent[i] != i { parent[i] = parent[parent[i]]; i = parent[i] }
            return i
        }
        for tie in ties {
            var first: Int? = nil
            for name in tie {
                guard let i = index[name] else { throw BitAllocationError.unknownTieMember(name: name) }
                if let f = first { let (a, b) = (root(f), root(i)); if a != b { parent[max(a, b)] = min(a, b) } }
                else { first = i }
            }
        }
        var classes: [Int: [Int]] = [:]
        for i in items.indices { classes[root(i), default: []].append(i) }

        var groups: [AllocationGroup] = []
        groups.reserveCapacity(classes.count)
        for var members in classes.values {
            members.sort { items[$0].name < items[$1].name }
            groups.append(try makeGroup(members))
        }
        groups.sort { $0.name < $1.name }
        var groupOf = [Int](repeating: 0, count: items.count)
        for (g, group) in groups.enumerated() { for m in group.members { groupOf[m] = g } }
        let minimumBytes = groups.reduce(0) { $0 + $1.bytes[$1.efficient[0]] }
        let costScale = groups.reduce(0.0) { $0 + $1.cost[$1.efficient[0]] }
        return PreparedAllocation(groups: groups, groupOf: groupOf, capacity: budgetBytes - fixedBytes,
                                  minimumBytes: minimumBytes, costScale: costScale)
    }

    /// One group from its members (sorted by name): common labels, pin, sums, dominance, hull.
    private func makeGroup(_ members: [Int]) throws -> AllocationGroup {
        let lead = items[members[0]]
        let memberNames = members.map { items[$0].name }
        // Label → choice, per member.
        let tables = members.map { m in
            Dictionary(uniqueKeysWithValues: items[m].choices.map { ($0.label, $0) })
        }
        var labels = lead.choices.map(\.label).filter { l in tables.allSatisfy { $0[l] != nil } }
        guard !labels.isEmpty else { throw BitAllocationError.noCommonLabel(tie: memberNames) }
        var pins: [String] = []
        for m in members { if let p = items[m].pinned, !pins.contains(p) { pins.append(p) } }
        if pins.count > 1 { throw BitAllocationError.conflictingPins(tie: memberNames, pins: pins) }
        if let p = pins.first {
            guard labels.contains(p) else {
                let who = members.first { items[$0].pinned == p }!
                throw BitAllocationError.pinOutsideTie(item: items[who].name, label: p, tie: memberNames, common: labels)
            }
            labels = [p]
        }
        var bytes: [Int] = [], cost: [Double] = []
        for l in labels {
            var b = 0, c = 0.0
            for t in tables { b += t[l]!.bytes; c += t[l]!.cost }
            bytes.append(b)
            cost.append(c)
        }

        // Dominance: by (bytes, cost, order), keep a choice only if it is strictly cheaper than all before.
        let sorted = labels.indices.sorted { (bytes[$0], cost[$0], $0) < (bytes[$1], cost[$1], $1) }
        var efficient: [Int] = []
        for k in sorted where efficient.isEmpty || cost[k] < cost[efficient.last!] { efficient.append(k) }

        // Lower convex hull (monotone chain): pop the last point while it lies on or above the line from
        // the one before it to the new point, i.e. while saving per byte does not strictly decrease.
        var hull: [Int] = []
        for (p, k) in efficient.enumerated() {
            while hull.count >= 2 {
                let a = efficient[hull[hull.count - 2]], b = efficient[hull[hull.count - 1]]
                let lhs = (cost[a] - cost[b]) * Double(bytes[k] - bytes[b])
                let rhs = (cost[b] - cost[k]) * Double(bytes[b] - bytes[a])
                if lhs <= rhs { hull.removeLast() } else { break }
            }
            hull.append(p)
        }
        return AllocationGroup(members: members, name: memberNames[0], labels: labels, bytes: bytes, cost: cost,
                               efficient: efficient, hull: hull)
    }
}
