import Foundation
import Testing
@testable import HessianDist

/// The bit-allocation solvers against brute force, a byte-indexed DP, the Lagrangian bound and a greedy
/// plan. Costs in the exact checks are multiples of 1/4, so every sum is exact in Double in any order and
/// "equal to the optimum" can be asserted bit for bit (tie-breaks included).
@Suite struct BitAllocationTests {
    // MARK: - Generators and references

    static let pool = ["A", "B", "C", "D"]

    /// A small random problem: 1–7 items, 1–5 choices from a 4-label pool in random order, bytes 0…12 and
    /// costs k/4 (duplicates on purpose), sometimes ties (pairs/triples) and pins; budget around the
    /// feasible range (sometimes below it). `narrow`: bytes 0…3 and costs 0…1, so that distinct plans
    /// often tie exactly in both.
    static func smallProblem(_ r: inout SplitMix, narrow: Bool = false) -> BitAllocationProblem {
        let n = Int.random(in: 1...7, using: &r)
        var items: [AllocationItem] = []
        for i in 0..<n {
            let m = Int.random(in: 1...(n > 5 ? 4 : 5), using: &r)
            let labels = pool.shuffled(using: &r).prefix(min(m, pool.count)) + (m > 4 ? ["E"] : [])
            let choices = labels.map {
                AllocationChoice(label: $0, bytes: Int.random(in: 0...(narrow ? 3 : 12), using: &r),
                                 cost: Double(Int.random(in: 0...(narrow ? 4 : 16), using: &r)) / 4)
            }
            let pin = Int.random(in: 0..<8, using: &r) == 0 ? choices.randomElement(using: &r)!.label : nil
            items.append(AllocationItem(name: "t\(Int.random(in: 0...99, using: &r))_\(i)", choices: choices, pinned: pin))
        }
        var ties: [[String]] = []
        if n >= 2 {
            for _ in 0..<Int.random(in: 0...2, using: &r) {
                let size = Int.random(in: 2...min(3, n), using: &r)
                ties.append(items.shuffled(using: &r).prefix(size).map(\.name))
            }
        }
        let sizes = items.map { $0.choices.map(\.bytes) }
        let lo = sizes.reduce(0) { $0 + $1.min()! }, hi = sizes.reduce(0) { $0 + $1.max()! }
        let fixed = Int.random(in: 0...3, using: &r)
        return BitAllocationProblem(items: items, ties: ties, fixedBytes: fixed,
                                    budgetBytes: fixed + Int.random(in: (lo - 2)...(hi + 2), using: &r))
    }

    struct Combination {
        var labels: [String: String]
        var bytes: Int
        var cost: Double
        /// Choice index per item, items in name order: the documented tie-break.
        var key: [Int]
    }

    /// Every combination that respects ties and pins (budget ignored).
    static func allCombinations(_ p: BitAllocationProblem) -> [Combination] {
        let byName = p.items.indices.sorted { p.items[$0].name < p.items[$1].name }
        var out: [Combination] = []
        var at = [Int](repeating: 0, count: p.items.count)
        while true {
            var labels: [String: String] = [:], bytes = p.fixedBytes, cost = 0.0, ok = true
            for (i, item) in p.items.enumerated() {
                let c = item.choices[at[i]]
                labels[item.name] = c.label
                bytes += c.bytes
                cost += c.cost
                if let pin = item.pinned, pin != c.label { ok = false }
            }
            for tie in p.ties where Set(tie.map { labels[$0]! }).count > 1 { ok = false }
            if ok { out.append(Combination(labels: labels, bytes: bytes, cost: cost, key: byName.map { at[$0] })) }
            var i = 0
            while i < at.count {
                at[i] += 1
                if at[i] < p.items[i].choices.count { break }
                at[i] = 0
                i += 1
            }
            if i == at.count { return out }
        }
    }

    /// The brute-force optimum under the documented order: cost, then bytes, then the key.
    static func bruteForce(_ p: BitAllocationProblem) -> Combination? {
        allCombinations(p).filter { $0.bytes <= p.budgetBytes }.min { a, b in
            if a.cost != b.cost { return a.cost < b.cost }
            if a.bytes != b.bytes { return a.bytes < b.bytes }
            return a.key.lexicographicallyPrecedes(b.key)
        }
    }

    /// Bytes and cost of a plan recomputed from the items, and whether ties and pins hold.
    /// The textbook oracle: best[b] = min cost of the items within b bytes, one DP row per item.
    static func byteDP(_ items: [AllocationItem], cap: Int) -> [Double] {
        var best = [Double](repeating: 0, count: cap + 1)
        for item in items {
            var next = [Double](repeating: .infinity, count: cap + 1)
            for b in 0...cap {
                for c in item.choices where c.bytes <= b { next[b] = min(next[b], best[b - c.bytes] + c.cost) }
            }
            best = next
        }
        return best
    }

    static func check(_ plan: BitPlan, _ p: BitAllocationProblem) -> (bytes: Int, cost: Double, valid: Bool) {
        var bytes = p.fixedBytes, cost = 0.0, valid = plan.labels.count == p.items.count
        for item in p.items {
            guard let l = plan[item.name], let c = item.choices.first(where: { $0.label == l }) else { return (0, 0, false) }
            bytes += c.bytes
            cost += c.cost
            if let pin = item.pinned, pin != l { valid = false }
        }
        for tie in p.ties where Set(tie.map { plan[$0] }).count > 1 { valid = false }
        return (bytes, cost, valid)
    }

    /// Whether a problem's ties/pins are structurally invalid (the solver must throw one of these).
    static func isStructuralError(_ e: Error) -> Bool {
        switch e as? BitAllocationError {
        case .noCommonLabel, .conflictingPins, .pinOutsideTie: return true
        default: return false
        }
    }

    // MARK: - Exactness

    @Test func matchesBruteForceOnSmallRandomProblems() throws {
        var r = SplitMix(s: 2024)
        var solved = 0, infeasible = 0, structural = 0
        for trial in 0..<2000 {
            let p = Self.smallProblem(&r, narrow: trial % 2 == 1)
            let combos = Self.allCombinations(p)
            let plan: BitPlan
            do { plan = try p.solve() } catch {
                if Self.isStructuralError(error) {
                    #expect(combos.isEmpty, "trial \(trial): \(error) but \(combos.count) valid combinations")
                    structural += 1
                } else if case .infeasible(let budget, let smallest)? = error as? BitAllocationError {
                    #expect(budget == p.budgetBytes)
                    #expect(smallest == combos.map(\.bytes).min(), "trial \(trial)")
                    #expect(Self.bruteForce(p) == nil, "trial \(trial): solver says infeasible")
                    infeasible += 1
                } else {
                    Issue.record("trial \(trial): unexpected \(error)")
                }
                continue
            }
            guard let best = Self.bruteForce(p) else { Issue.record("trial \(trial): brute force finds nothing"); continue }
            let (bytes, cost, valid) = Self.check(plan, p)
            #expect(valid && bytes <= p.budgetBytes, "trial \(trial)")
            #expect(bytes == plan.totalBytes && cost == plan.totalCost, "trial \(trial)")
            #expect(plan.totalCost == best.cost, "trial \(trial): \(plan.totalCost) vs optimum \(best.cost)")
            #expect(plan.totalBytes == best.bytes, "trial \(trial): fewer bytes on equal cost")
            #expect(plan.labels == best.labels, "trial \(trial): tie-break by name then choice order")
            #expect(plan.isOptimal)
            #expect(plan.lowerBound <= plan.totalCost + 1e-12, "trial \(trial)")
            solved += 1
        }
        // The generator must exercise every outcome.
        #expect(solved > 800 && infeasible > 20 && structural > 5, "\(solved) \(infeasible) \(structural)")
    }

    /// With real-valued costs sums round differently in different orders: the cost must still match the
    /// brute-force optimum to rounding.
    @Test func matchesBruteForceWithRealCosts() throws {
        var r = SplitMix(s: 77)
        for trial in 0..<400 {
            var p = Self.smallProblem(&r)
            p.ties = []
            for i in p.items.indices { p.items[i].pinned = nil }
            for i in p.items.indices {
                for j in p.items[i].choices.indices { p.items[i].choices[j].cost = Double.random(in: 0...1e3, using: &r) }
            }
            guard let best = Self.bruteForce(p) else {
                #expect(throws: BitAllocationError.self) { try p.solve() }
                continue
            }
            let plan = try p.solve()
            #expect(Self.check(plan, p).valid && plan.totalBytes <= p.budgetBytes)
            #expect(abs(plan.totalCost - best.cost) <= 1e-12 * max(1, best.cost), "trial \(trial)")
        }
    }

    /// Problems too large for brute force (30 items × 4 choices) against the textbook DP over every byte.
    @Test func matchesByteIndexedDPOnMediumProblems() throws {
        var r = SplitMix(s: 9)
        for trial in 0..<40 {
            let items = (0..<30).map { i in
                AllocationItem(name: "w\(i)", choices: Self.pool.map {
                    AllocationChoice(label: $0, bytes: Int.random(in: 1...40, using: &r),
                                     cost: Double(Int.random(in: 0...400, using: &r)) / 4)
                })
            }
            let lo = items.reduce(0) { $0 + $1.choices.map(\.bytes).min()! }
            let hi = items.reduce(0) { $0 + $1.choices.map(\.bytes).max()! }
            let cap = Int.random(in: lo...hi, using: &r)
            let best = Self.byteDP(items, cap: cap)
            let p = BitAllocationProblem(items: items, fixedBytes: 5, budgetBytes: cap + 5)
            let plan = try p.solve()
            #expect(plan.totalCost == best[cap], "trial \(trial): \(plan.totalCost) vs DP \(best[cap])")
            #expect(plan.totalBytes <= p.budgetBytes && plan.isOptimal && Self.check(plan, p).valid)
        }
    }

    /// Cost proportional to bytes saved (equal saving per byte everywhere: subset-sum), where the LP bound
    /// prunes nothing and a small state cap binds: the plan stays feasible, no better than the DP optimum,
    /// and is called optimal only when it is.
    @Test func degenerateProblemsAreReportedHonestly() throws {
        var r = SplitMix(s: 21)
        var proved = 0, unproved = 0
        for _ in 0..<60 {
            let items = (0..<30).map { i in
                let n = Int.random(in: 5...60, using: &r)
                return AllocationItem(name: "w\(i)", choices: [2, 3, 4].map { k in
                    AllocationChoice(label: "Q\(k)", bytes: n * k, cost: Double(n * (4 - k)))
                })
            }
            let lo = items.reduce(0) { $0 + $1.choices[0].bytes }, hi = items.reduce(0) { $0 + $1.choices[2].bytes }
            let cap = Int.random(in: lo...hi, using: &r)
            let best = Self.byteDP(items, cap: cap)
            let p = BitAllocationProblem(items: items, budgetBytes: cap)
            #expect(try p.solve().totalCost == best[cap])
            let plan = try p.solve(maxStates: 16)
            #expect(plan.totalBytes <= cap && Self.check(plan, p).valid && plan.totalCost >= best[cap])
            #expect(plan.totalCost <= (try p.relaxation()).plan.totalCost)
            if plan.isOptimal { #expect(plan.totalCost == best[cap]); proved += 1 } else { unproved += 1 }
        }
        #expect(proved > 0 && unproved > 0, "\(proved) proved, \(unproved) not")
    }

    @Test func infeasibleBudgetNamesTheSmallestFile() throws {
        let items = [
            AllocationItem(name: "a", choices: [.init(label: "Q4", bytes: 10, cost: 1), .init(label: "Q2", bytes: 6, cost: 5)]),
            AllocationItem(name: "b", choices: [.init(label: "Q4", bytes: 20, cost: 1), .init(label: "Q2", bytes: 12, cost: 5)]),
        ]
        let p = BitAllocationProblem(items: items, fixedBytes: 100, budgetBytes: 117)
        #expect(throws: BitAllocationError.infeasible(budgetBytes: 117, smallestBytes: 118)) { try p.solve() }
        #expect(throws: BitAllocationError.infeasible(budgetBytes: 117, smallestBytes: 118)) { try p.relaxation() }
        #expect(throws: BitAllocationError.infeasible(budgetBytes: 117, smallestBytes: 118)) { try p.paretoFrontier() }
        var q = p
        q.budgetBytes = 118
        #expect(try q.solve().labels == ["a": "Q2", "b": "Q2"])
        #expect(try p.usefulByteRange() == 118...130)
    }

    // MARK: - Ties, pins, dominance, determinism

    /// Two plans equal in cost and bytes: the one whose first item by name takes its earlier choice wins,
    /// whatever the item order.
    @Test func exactTiesGoToEarlierChoicesByName() throws {
        func item(_ n: String) -> AllocationItem {
            AllocationItem(name: n, choices: [.init(label: "X", bytes: 1, cost: 2), .init(label: "Y", bytes: 2, cost: 1)])
        }
        // (a=X, b=Y, c=Y) and (a=Y, b=X, c=Y), … all cost 4 in 5 bytes: a takes X, then b and c Y.
        for order in [["a", "b", "c"], ["c", "b", "a"], ["b", "c", "a"]] {
            let plan = try BitAllocationProblem(items: order.map(item), budgetBytes: 5).solve()
            #expect(plan.labels == ["a": "X", "b": "Y", "c": "Y"], "\(order)")
        }
        // Listing Y first makes Y the earlier choice: now a takes Y.
        var items = ["c", "a", "b"].map(item)
        items[1].choices.reverse()
        #expect(try BitAllocationProblem(items: items, budgetBytes: 5).solve().labels == ["a": "Y", "b": "X", "c": "Y"])
    }

    /// q/k/v each alone would take a different type; tied they take one, the cheapest in total.
    @Test func tiesTakeOneLabel() throws {
        func item(_ n: String, _ costs: [Double]) -> AllocationItem {
            AllocationItem(name: n, choices: zip(["Q3", "Q4", "Q5"], costs).enumerated().map {
                AllocationChoice(label: $0.element.0, bytes: 10 * ($0.offset + 3), cost: $0.element.1)
            })
        }
        let items = [item("q", [1, 9, 9]), item("k", [9, 1, 9]), item("v", [9, 9, 1]), item("o", [3, 2, 1])]
        let free = try BitAllocationProblem(items: items, budgetBytes: 1000).solve()
        #expect(free.labels == ["q": "Q3", "k": "Q4", "v": "Q5", "o": "Q5"])
        // Tied: Q3 = 19, Q4 = 19, Q5 = 19 for q+k+v: equal cost, so fewest bytes (Q3) wins.
        let tied = BitAllocationProblem(items: items, ties: [["v", "q"], ["k", "q"]], budgetBytes: 1000)
        let plan = try tied.solve()
        #expect(plan.labels == ["q": "Q3", "k": "Q3", "v": "Q3", "o": "Q5"])
        #expect(plan.totalCost == 20 && plan.totalBytes == 90 + 50)
        // Tie groups that overlap merge: the same as one group of three.
        #expect(try BitAllocationProblem(items: items, ties: [["q", "k", "v"]], budgetBytes: 1000).solve() == plan)
        // A tie restricted to the labels all members offer.
        var partial = items
        partial[0].choices.removeFirst()  // q lacks Q3
        let p2 = try BitAllocationProblem(items: partial, ties: [["q", "k", "v"]], budgetBytes: 1000).solve()
        #expect(p2["q"] == "Q4" && p2["k"] == "Q4" && p2["v"] == "Q4")
        // A tied group's choice order is its first member's by name ("k"), whatever the item order.
        let same = [AllocationChoice(label: "Q4", bytes: 10, cost: 1), AllocationChoice(label: "Q5", bytes: 10, cost: 1)]
        let kq = [AllocationItem(name: "q", choices: same), AllocationItem(name: "k", choices: same.reversed())]
        for items in [kq, kq.reversed()] {
            #expect(try BitAllocationProblem(items: items, ties: [["q", "k"]], budgetBytes: 20).solve().labels == ["q": "Q5", "k": "Q5"])
        }
    }

    @Test func pinsAreRespected() throws {
        var r = SplitMix(s: 5)
        for trial in 0..<300 {
            var p = Self.smallProblem(&r)
            p.budgetBytes = Int.max / 2  // every plan fits: a pin must win against the free optimum
            let i = Int.random(in: 0..<p.items.count, using: &r)
            let pin = p.items[i].choices.randomElement(using: &r)!.label
            p.items[i].pinned = pin
            guard let best = Self.bruteForce(p) else {
                #expect(throws: BitAllocationError.self, "trial \(trial)") { try p.solve() }
                continue
            }
            let plan = try p.solve()
            #expect(plan[p.items[i].name] == pin)
            #expect(plan.labels == best.labels && plan.totalCost == best.cost, "trial \(trial)")
            // The same as the problem where the item only offers its pin.
            var only = p
            only.items[i].choices = p.items[i].choices.filter { $0.label == pin }
            only.items[i].pinned = nil
            #expect(try only.solve().labels == plan.labels)
        }
    }

    /// Adding choices with more bytes and no less cost than an existing one never changes the plan.
    @Test func dominatedChoicesNeverChangeThePlan() throws {
        var r = SplitMix(s: 11)
        var compared = 0
        for _ in 0..<600 {
            let p = Self.smallProblem(&r)
            guard let plan = try? p.solve() else { continue }
            var q = p
            for i in q.items.indices {
                let base = q.items[i].choices.randomElement(using: &r)!
                let extra = AllocationChoice(label: "X\(i)", bytes: base.bytes + Int.random(in: 1...5, using: &r),
                                             cost: base.cost + Double(Int.random(in: 0...2, using: &r)) / 4)
                q.items[i].choices.insert(extra, at: Int.random(in: 0...q.items[i].choices.count, using: &r))
                if Int.random(in: 0..<3, using: &r) == 0 {  // an exact copy under another label, listed later
                    q.items[i].choices.append(AllocationChoice(label: "Y\(i)", bytes: base.bytes, cost: base.cost))
                }
            }
            // Tied items must all offer a new label for it to be usable: the "X" labels differ per item, so
            // only untied items gain candidates; that is the case under test.
            let plan2 = try q.solve()
            #expect(plan2.labels == plan.labels && plan2.totalCost == plan.totalCost && plan2.totalBytes == plan.totalBytes)
            compared += 1
        }
        #expect(compared > 300)
    }

    /// The same plan, bit for bit, whatever the order of items, ties and tie members; and on a re-run.
    @Test func planIsIndependentOfInputOrder() throws {
        var r = SplitMix(s: 3)
        for trial in 0..<20 {
            let n = 60
            let labels = ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]
            var items = (0..<n).map { i in
                AllocationItem(name: "blk.\(i / 6).t\(i % 6)", choices: labels.enumerated().map { k, l in
                    // Few distinct values: many plans tie exactly in cost and bytes.
                    AllocationChoice(label: l, bytes: (k + 2) * Int.random(in: 1...3, using: &r),
                                     cost: Double(Int.random(in: 0...3, using: &r)) * 0.1 * Double(5 - k))
                })
            }
            items[7].pinned = "Q4_K"
            let ties = stride(from: 0, to: n, by: 6).map { [items[$0].name, items[$0 + 1].name, items[$0 + 2].name] }
            let budget = items.reduce(0) { $0 + $1.choices[2].bytes }
            let p = BitAllocationProblem(items: items, ties: ties, fixedBytes: 17, budgetBytes: budget)
            let plan = try p.solve()
            #expect(try p.solve() == plan)
            var shuffled = p
            shuffled.items.shuffle(using: &r)
            shuffled.ties = ties.map { $0.shuffled(using: &r) }.shuffled(using: &r)
            #expect(try shuffled.solve() == plan, "trial \(trial)")
            #expect(try shuffled.paretoFrontier(budgets: [budget - 10, budget]) == p.paretoFrontier(budgets: [budget - 10, budget]))
        }
    }

    @Test func malformedProblemsThrowTypedErrors() {
        func c(_ l: String, _ b: Int = 1, _ cost: Double = 1) -> AllocationChoice { .init(label: l, bytes: b, cost: cost) }
        let ok = [AllocationItem(name: "a", choices: [c("Q4"), c("Q8", 2)]), AllocationItem(name: "b", choices: [c("Q4"), c("Q6", 2)])]
        func expectError(_ e: BitAllocationError, items: [AllocationItem] = ok, ties: [[String]] = [], fixed: Int = 0) {
            let p = BitAllocationProblem(items: items, ties: ties, fixedBytes: fixed, budgetBytes: 100)
            #expect(throws: e) { try p.solve() }
            #expect(throws: e) { try p.sizeOnlyBaseline() }
            #expect(e.description.contains("hint:"))
        }
        expectError(.duplicateItem(name: "a"), items: ok + [ok[0]])
        expectError(.noChoices(item: "z"), items: ok + [AllocationItem(name: "z", choices: [])])
        expectError(.duplicateLabel(item: "z", label: "Q4"), items: ok + [AllocationItem(name: "z", choices: [c("Q4"), c("Q4", 2)])])
        expectError(.negativeBytes(item: "z", label: "Q4", bytes: -1), items: ok + [AllocationItem(name: "z", choices: [c("Q4", -1)])])
        expectError(.invalidCost(item: "z", label: "Q4", cost: -0.5), items: ok + [AllocationItem(name: "z", choices: [c("Q4", 1, -0.5)])])
        let nan = BitAllocationProblem(items: [AllocationItem(name: "z", choices: [c("Q4", 1, .nan)])], budgetBytes: 9)
        #expect(throws: BitAllocationError.self) { try nan.solve() }
        expectError(.negativeFixedBytes(-3), fixed: -3)
        expectError(.bytesOverflow(item: "b"), items: [AllocationItem(name: "a", choices: [c("Q4", Int.max - 1)]), ok[1]])
        expectError(.unknownPin(item: "z", label: "Q2", available: ["Q4"]),
                    items: ok + [AllocationItem(name: "z", choices: [c("Q4")], pinned: "Q2")])
        expectError(.unknownTieMember(name: "nope"), ties: [["a", "nope"]])
        expectError(.noCommonLabel(tie: ["a", "z"]), items: ok + [AllocationItem(name: "z", choices: [c("Q5")])], ties: [["z", "a"]])
        var pinned = ok
        pinned[0].pinned = "Q4"
        pinned[1].pinned = "Q6"
        expectError(.conflictingPins(tie: ["a", "b"], pins: ["Q4", "Q6"]), items: pinned, ties: [["a", "b"]])
        pinned[1].pinned = nil
        pinned[0].pinned = "Q8"
        expectError(.pinOutsideTie(item: "a", label: "Q8", tie: ["a", "b"], common: ["Q4"]), items: pinned, ties: [["b", "a"]])
    }

    /// The state cap: a plan is still feasible and never better than the optimum, and `isOptimal` is only
    /// claimed when it is.
    @Test func stateCapIsHonest() throws {
        var r = SplitMix(s: 13)
        var unproved = 0
        for trial in 0..<400 {
            let p = Self.smallProblem(&r)
            guard let best = Self.bruteForce(p) else { continue }
            let plan = try p.solve(maxStates: 1)
            let (bytes, cost, valid) = Self.check(plan, p)
            #expect(valid && bytes <= p.budgetBytes && cost == plan.totalCost)
            #expect(plan.totalCost >= best.cost, "trial \(trial)")
            if plan.isOptimal { #expect(plan.totalCost == best.cost, "trial \(trial)") } else { unproved += 1 }
        }
        #expect(unproved > 0)
    }

    // MARK: - Pareto frontier

    @Test func frontierMatchesBruteForce() throws {
        var r = SplitMix(s: 99)
        var points = 0
        for trial in 0..<600 {
            let p = Self.smallProblem(&r)
            guard let frontier = try? p.paretoFrontier() else {
                #expect(Self.bruteForce(p) == nil, "trial \(trial)")
                continue
            }
            let combos = Self.allCombinations(p).filter { $0.bytes <= p.budgetBytes }
            // Non-dominated (bytes, cost) pairs of brute force.
            let pareto = Set(combos.filter { a in
                !combos.contains { b in b.bytes <= a.bytes && b.cost <= a.cost && (b.bytes < a.bytes || b.cost < a.cost) }
            }.map { "\($0.bytes):\($0.cost)" })
            #expect(Set(frontier.map { "\($0.totalBytes):\($0.totalCost)" }) == pareto, "trial \(trial)")
            #expect(frontier.count == pareto.count, "trial \(trial): one plan per point")
            for (i, plan) in frontier.enumerated() {
                let (bytes, cost, valid) = Self.check(plan, p)
                #expect(valid && bytes == plan.totalBytes && cost == plan.totalCost && bytes <= p.budgetBytes)
                #expect(!combos.contains { $0.bytes <= bytes && $0.cost <= cost && ($0.bytes < bytes || $0.cost < cost) },
                        "trial \(trial): a combination dominates frontier point \(i)")
                if i > 0 { #expect(plan.totalBytes > frontier[i - 1].totalBytes && plan.totalCost < frontier[i - 1].totalCost) }
                // Each point is the exact solve at its own size.
                var q = p
                q.budgetBytes = plan.totalBytes
                #expect(try q.solve() == plan, "trial \(trial) point \(i)")
                #expect(plan.budgetBytes == plan.totalBytes && plan.isOptimal)
            }
            points += frontier.count
            let budgets = frontier.map(\.totalBytes) + [p.budgetBytes]
            let swept = try p.paretoFrontier(budgets: budgets)
            for (b, plan) in zip(budgets, swept) {
                var q = p
                q.budgetBytes = b
                #expect(try q.solve() == plan)
            }
        }
        #expect(points > 700)
    }

    @Test func frontierLimitThrows() throws {
        let items = (0..<4).map { i in
            AllocationItem(name: "w\(i)", choices: [.init(label: "lo", bytes: 1, cost: 4), .init(label: "hi", bytes: 2 + i, cost: 1)])
        }
        let p = BitAllocationProblem(items: items, budgetBytes: 1000)
        #expect(try p.paretoFrontier().count == 5)  // 0…4 upgrades, each the cheapest bytes for its count
        #expect(throws: BitAllocationError.frontierTooLarge(points: 2, limit: 1)) { try p.paretoFrontier(maxPoints: 1) }
    }

    // MARK: - Realistic size

    /// ggml types with their bits per weight and a relative error factor at equal bits.
    static let types: [(GGMLType, Double)] = [(.q2_K, 1.2), (.q3_K, 1.1), (.q4_0, 1.3), (.q4_K, 1), (.q5_K, 1),
                                              (.q6_K, 1), (.q8_0, 1), (.f16, 1)]

    /// 300 tensors of a 2048-wide GQA model with HAWQ-like costs: sensitivity (log-uniform over 6 decades)
    /// × elements × 2^(−2·bpw) × noise; bytes exact from ggml's block sizes. Tied: q/k/v and gate/up
    /// of every layer (→ 172 groups); untied: 300 groups.
    static func hawqProblem(tied: Bool, seed: UInt64) -> (BitAllocationProblem, elements: Int) {
        var r = SplitMix(s: seed)
        let d = 2048, ff = 5632
        let shapes = [("attn_q", d * d), ("attn_k", d * d / 4), ("attn_v", d * d / 4), ("attn_output", d * d),
                      ("ffn_gate", d * ff), ("ffn_up", d * ff), ("ffn_down", d * ff)]
        var items: [AllocationItem] = [], ties: [[String]] = [], elements = 0
        for i in 0..<300 {
            let (kind, n) = shapes[i % 7]
            let layer = i / 7
            let s = pow(10, Double.random(in: -3...3, using: &r))
            let choices = types.map { t, factor in
                AllocationChoice(label: t.description, bytes: t.byteCount(elements: n)!,
                                 cost: s * Double(n) * pow(2, -2 * t.bitsPerWeight) * factor * Double.random(in: 0.8...1.2, using: &r))
            }
            items.append(AllocationItem(name: "blk.\(layer).\(kind).weight", choices: choices))
            elements += n
            if tied && i % 7 == 2 { ties.append((0..<3).map { items[i - $0].name }) }
            if tied && i % 7 == 5 { ties.append([items[i - 1].name, items[i].name]) }
        }
        items[0].pinned = "Q6_K"
        let fixed = 1_000_000
        return (BitAllocationProblem(items: items, ties: ties, fixedBytes: fixed,
                                     budgetBytes: fixed + elements * 9 / 16), elements)  // 4.5 bits per weight
    }

    /// Groups as the test sees them: per group, per label, Σ bytes and Σ cost.
    static func testGroups(_ p: BitAllocationProblem) -> [[(label: String, bytes: Int, cost: Double)]] {
        var rep = [String: String]()
        for tie in p.ties { for n in tie { rep[n] = tie[0] } }
        var groups: [String: [AllocationItem]] = [:]
        for item in p.items { groups[rep[item.name] ?? item.name, default: []].append(item) }
        return groups.values.map { members in
            members[0].choices.map(\.label).filter { l in
                members.allSatisfy { m in m.pinned == nil || m.pinned == l }
            }.map { l in
                let cs = members.map { m in m.choices.first { $0.label == l }! }
                return (l, cs.reduce(0) { $0 + $1.bytes }, cs.reduce(0) { $0 + $1.cost })
            }
        }
    }

    @Test(arguments: [(true, UInt64(1)), (false, UInt64(2)), (false, UInt64(3))])
    func realisticProblemBeatsGreedyAndMeetsTheBound(_ arg: (Bool, UInt64)) throws {
        let (p, _) = Self.hawqProblem(tied: arg.0, seed: arg.1)
        let plan = try p.solve()
        let (bytes, cost, valid) = Self.check(plan, p)
        #expect(valid && bytes == plan.totalBytes && bytes <= p.budgetBytes)
        #expect(abs(cost - plan.totalCost) <= 1e-9 * cost)
        #expect(plan.isOptimal)
        #expect(plan[p.items[0].name] == "Q6_K")
        let groups = Self.testGroups(p)
        let cap = p.budgetBytes - p.fixedBytes
        // The Lagrangian bound, independently: L(λ) = Σ min (cost + λ·bytes) − λ·cap for λ on a grid.
        var lagrangian = -Double.infinity
        for e in stride(from: -14.0, through: 2.0, by: 0.01) {
            let lambda = pow(10, e)
            let v = groups.reduce(0.0) { $0 + $1.map { $0.cost + lambda * Double($0.bytes) }.min()! } - lambda * Double(cap)
            lagrangian = max(lagrangian, v)
        }
        let relaxation = try p.relaxation()
        #expect(relaxation.lowerBound >= lagrangian - 1e-9 * abs(lagrangian), "the LP bound is the max over λ")
        #expect(plan.lowerBound == relaxation.lowerBound)
        #expect(plan.totalCost >= relaxation.lowerBound * (1 - 1e-12))
        #expect(relaxation.plan.totalCost >= plan.totalCost && relaxation.plan.totalBytes <= p.budgetBytes)
        // A plain greedy: from the smallest choices, take the upgrade with the best cost saved per byte that fits.
        var at = groups.map { g in g.indices.min { (g[$0].bytes, g[$0].cost) < (g[$1].bytes, g[$1].cost) }! }
        var used = zip(groups, at).reduce(0) { $0 + $1.0[$1.1].bytes }
        while true {
            var best: (g: Int, k: Int, rate: Double)? = nil
            for (g, group) in groups.enumerated() {
                let cur = group[at[g]]
                for (k, c) in group.enumerated() where c.cost < cur.cost && c.bytes - cur.bytes <= cap - used {
                    let rate = (cur.cost - c.cost) / Double(max(c.bytes - cur.bytes, 1))
                    if best == nil || rate > best!.rate { best = (g, k, rate) }
                }
            }
            guard let b = best else { break }
            used += groups[b.g][b.k].bytes - groups[b.g][at[b.g]].bytes
            at[b.g] = b.k
        }
        let greedy = zip(groups, at).reduce(0.0) { $0 + $1.0[$1.1].cost }
        #expect(plan.totalCost <= greedy * (1 + 1e-12), "exact \(plan.totalCost) vs greedy \(greedy)")
        let baseline = try p.sizeOnlyBaseline()
        #expect(plan.totalCost <= baseline.totalCost && baseline.totalBytes <= p.budgetBytes)
    }

    /// A bits-per-weight sweep on the realistic problem: cost falls as the budget grows.
    @Test func budgetSweepIsMonotone() throws {
        let (p, elements) = Self.hawqProblem(tied: true, seed: 4)
        let budgets = [3.0, 3.5, 4.0, 4.5, 5.0, 6.0].map { p.fixedBytes + Int(Double(elements) * $0 / 8) }
        let plans = try p.paretoFrontier(budgets: budgets)
        for (i, plan) in plans.enumerated() {
            #expect(plan.totalBytes <= budgets[i] && plan.isOptimal && Self.check(plan, p).valid)
            if i > 0 { #expect(plan.totalCost <= plans[i - 1].totalCost) }
        }
        let range = try p.usefulByteRange()
        #expect(try p.paretoFrontier(budgets: [range.upperBound])[0].totalBytes == range.upperBound)
        #expect(throws: BitAllocationError.self) { try p.paretoFrontier(budgets: [range.lowerBound - 1]) }
    }

    // MARK: - Size-only baseline

    @Test func baselineIsFeasibleAndIgnoresCosts() throws {
        let (p, elements) = Self.hawqProblem(tied: true, seed: 5)
        #expect(p.defaultLadder() == ["Q2_K", "Q3_K", "Q4_0", "Q4_K", "Q5_K", "Q6_K", "Q8_0", "F16"])
        for bpw in stride(from: 2.7, through: 9.0, by: 0.4) {
            var q = p
            q.budgetBytes = p.fixedBytes + Int(Double(elements) * bpw / 8)
            let base = try q.sizeOnlyBaseline()
            let (bytes, cost, valid) = Self.check(base, q)
            #expect(valid && bytes == base.totalBytes && bytes <= q.budgetBytes && abs(cost - base.totalCost) <= 1e-9 * cost)
            let exact = try q.solve()
            #expect(!base.isOptimal && base.totalCost >= exact.totalCost)
            // Costs scaled per item do not change a size-only plan.
            var scaled = q
            for i in scaled.items.indices {
                let f = Double(i % 5 + 1)
                for j in scaled.items[i].choices.indices { scaled.items[i].choices[j].cost *= f }
            }
            #expect(try scaled.sizeOnlyBaseline().labels == base.labels)
        }
        // At exactly the uniform Q4_K size every unpinned tensor gets Q4_K (nothing else fits after it).
        var q = p
        q.items[0].pinned = nil
        q.budgetBytes = q.fixedBytes + q.items.reduce(0) { $0 + $1.choices.first { $0.label == "Q4_K" }!.bytes }
        #expect(Set(try q.sizeOnlyBaseline().labels.values) == ["Q4_K"])
        q.budgetBytes = q.fixedBytes + q.items.reduce(0) { $0 + $1.choices[0].bytes } - 1
        #expect(throws: BitAllocationError.self) { try q.sizeOnlyBaseline() }
        #expect(throws: BitAllocationError.invalidLadder("Q4_K listed twice")) { try q.sizeOnlyBaseline(ladder: ["Q4_K", "Q4_K"]) }
    }
}
