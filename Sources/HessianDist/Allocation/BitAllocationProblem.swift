// The budgeted bit-allocation problem (HAWQ-v3's multiple-choice knapsack): per tensor one quant type
// out of a few candidates, each with exact stored bytes and a predicted damage; minimise the total damage
// under a file-size budget. This file holds the problem and plan types; the solvers are in
// `BitAllocationProblem+Solve.swift` (exact), `+Relaxation.swift` (Lagrangian bound) and `+Baseline.swift`.
// Not where the costs come from (sensitivity estimates, GPTQ errors) and not the GGUF writer.

/// One candidate type for one tensor.
public struct AllocationChoice: Sendable, Equatable, Hashable, Codable {
    /// The type's name, e.g. "Q4_K"; unique within its item.
    public var label: String
    /// Exact bytes the file stores for the tensor in this type (data only; alignment padding belongs
    /// to the caller's `fixedBytes` or here, consistently). ≥ 0.
    public var bytes: Int
    /// Predicted damage (e.g. trace(H)·‖ΔW‖² in loss units); finite, ≥ 0, smaller is better. Costs add
    /// over tensors, so they must share one unit.
    public var cost: Double

    public init(label: String, bytes: Int, cost: Double) {
        self.label = label
        self.bytes = bytes
        self.cost = cost
    }
}

/// One tensor and its candidate types.
public struct AllocationItem: Sendable, Equatable, Codable {
    /// Unique within the problem (the GGUF tensor name, e.g. "blk.3.attn_q.weight").
    public var name: String
    /// The candidates; their order is the tie-break among equally good plans (earlier wins).
    public var choices: [AllocationChoice]
    /// If set, the item must take this label (e.g. the output tensor kept at Q6_K).
    public var pinned: String?

    public init(name: String, choices: [AllocationChoice], pinned: String? = nil) {
        self.name = name
        self.choices = choices
        self.pinned = pinned
    }
}

/// Minimise Σ cost subject to `fixedBytes` + Σ bytes ≤ `budgetBytes`, one choice per item, tied items
/// taking the same label and pinned items their pin.
///
/// A tie group (e.g. q/k/v of one layer, which share one input and are often fused; gate/up) acts as one
/// combined item whose choices are the labels every member offers, bytes and costs summed. Overlapping tie
/// groups merge (ties are transitive).
public struct BitAllocationProblem: Sendable, Equatable, Codable {
    public var items: [AllocationItem]
    /// Sets of item names that must take the same label.
    public var ties: [[String]]
    /// Bytes of the file that are not allocated here (header, metadata, norms, unquantized tensors). ≥ 0.
    public var fixedBytes: Int
    /// Total file size allowed, `fixedBytes` included.
    public var budgetBytes: Int

    public init(items: [AllocationItem], ties: [[String]] = [], fixedBytes: Int = 0, budgetBytes: Int) {
        self.items = items
        self.ties = ties
        self.fixedBytes = fixedBytes
        self.budgetBytes = budgetBytes
    }
}

/// A chosen label for every item.
public struct BitPlan: Sendable, Equatable, Codable {
    /// Item name → chosen label, for every item of the problem.
    public var labels: [String: String]
    /// `fixedBytes` + Σ chosen bytes.
    public var totalBytes: Int
    /// Σ chosen costs (summed per tie group, then over groups in name order: the same value whatever the
    /// item order).
    public var totalCost: Double
    /// The budget the plan was made for (total file bytes, `fixedBytes` included).
    public var budgetBytes: Int
    /// Whether `totalCost` is proved minimal at `budgetBytes` (the exact solver's search was complete).
    public var isOptimal: Bool
    /// The Lagrangian (= LP-relaxation) lower bound on the minimum cost at `budgetBytes`: no plan within
    /// the budget costs less. `totalCost − lowerBound` bounds how far from optimal a plan can be.
    public var lowerBound: Double

    public init(labels: [String: String], totalBytes: Int, totalCost: Double, budgetBytes: Int,
                isOptimal: Bool, lowerBound: Double) {
        self.labels = labels
        self.totalBytes = totalBytes
        self.totalCost = totalCost
        self.budgetBytes = budgetBytes
        self.isOptimal = isOptimal
        self.lowerBound = lowerBound
    }

    /// The label chosen for `item`, nil for a name not in the problem.
    public subscript(item: String) -> String? { labels[item] }
}

/// Thrown for problems that are malformed or cannot be met; each message says what to change.
public enum BitAllocationError: Error, CustomStringConvertible, Sendable, Equatable {
    case duplicateItem(name: String)
    case noChoices(item: String)
    case duplicateLabel(item: String, label: String)
    case negativeBytes(item: String, label: String, bytes: Int)
    case invalidCost(item: String, label: String, cost: Double)
    case negativeFixedBytes(Int)
    /// The byte counts add up past `Int.max`.
    case bytesOverflow(item: String)
    case unknownPin(item: String, label: String, available: [String])
    case unknownTieMember(name: String)
    /// The members of a tie group (after merging overlapping groups) offer no label in common.
    case noCommonLabel(tie: [String])
    /// Members of one tie group are pinned to different labels.
    case conflictingPins(tie: [String], pins: [String])
    /// A pinned member's label is not offered by every member of its tie group.
    case pinOutsideTie(item: String, label: String, tie: [String], common: [String])
    /// No plan fits: the smallest file this problem (or this baseline) can make is `smallestBytes`.
    case infeasible(budgetBytes: Int, smallestBytes: Int)
    /// The exact frontier has more points than allowed.
    case frontierTooLarge(points: Int, limit: Int)
    case invalidLadder(String)

    /// What to do about it.
    public var hint: String {
        switch self {
        case .duplicateItem: return "give every tensor one item; merge or rename the duplicates"
        case .noChoices: return "give the item at least one candidate type, or leave the tensor out and count it in fixedBytes"
        case .duplicateLabel: return "labels must be unique within an item: drop the repeated candidate"
        case .negativeBytes: return "bytes are the stored size of the tensor in that type; check the size computation"
        case .invalidCost: return "costs must be finite and ≥ 0; check the sensitivity estimate (NaN traces, negative Fisher)"
        case .negativeFixedBytes: return "fixedBytes counts the file's non-allocatable bytes and cannot be negative"
        case .bytesOverflow: return "byte counts this large are not file sizes; check units"
        case .unknownPin: return "pin one of the item's own labels, or add the pinned type to its choices"
        case .unknownTieMember: return "tie groups must name items of the problem; check the tensor names"
        case .noCommonLabel: return "tied tensors need at least one type in common; add it to every member or drop the tie"
        case .conflictingPins: return "pin at most one label per tie group, or remove the tie"
        case .pinOutsideTie: return "pin a label every tied member offers, or remove the tie"
        case .infeasible: return "raise the budget to at least smallestBytes, or add smaller candidate types"
        case .frontierTooLarge: return "use paretoFrontier(budgets:) for a sweep of budgets, or lower budgetBytes"
        case .invalidLadder: return "list each label once, smallest type first"
        }
    }

    public var description: String {
        let what: String
        switch self {
        case .duplicateItem(let n): what = "item \"\(n)\" appears more than once"
        case .noChoices(let n): what = "item \"\(n)\" has no choices"
        case .duplicateLabel(let n, let l): what = "item \"\(n)\" lists label \(l) twice"
        case .negativeBytes(let n, let l, let b): what = "item \"\(n)\" label \(l): bytes expected ≥ 0, found \(b)"
        case .invalidCost(let n, let l, let c): what = "item \"\(n)\" label \(l): cost expected finite and ≥ 0, found \(c)"
        case .negativeFixedBytes(let b): what = "fixedBytes expected ≥ 0, found \(b)"
        case .bytesOverflow(let n): what = "total bytes overflow at item \"\(n)\""
        case .unknownPin(let n, let l, let a): what = "item \"\(n)\" is pinned to \(l), expected one of \(a)"
        case .unknownTieMember(let n): what = "tie names \"\(n)\", which is not an item"
        case .noCommonLabel(let t): what = "tie group \(t) has no label common to all members"
        case .conflictingPins(let t, let p): what = "tie group \(t) is pinned to different labels \(p)"
        case .pinOutsideTie(let n, let l, let t, let c):
            what = "item \"\(n)\" is pinned to \(l), but its tie group \(t) only shares \(c)"
        case .infeasible(let b, let s): what = "no plan fits in \(b) bytes: the smallest is \(s) bytes"
        case .frontierTooLarge(let p, let l): what = "Pareto frontier reached \(p) points, limit \(l)"
        case .invalidLadder(let m): what = "invalid ladder: \(m)"
        }
        return "bit allocation: \(what) (hint: \(hint))"
    }
}
