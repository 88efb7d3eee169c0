// The ends of the network: token embedding lookup and the softmax cross-entropy over the vocabulary,
// forward and backward. Not the classifier matmul (that is `matmulForward`).
#if canImport(Glibc)
import Glibc
#endif

/// tokens (N), weight (V,C) -> out (N,C) = rows of weight. Token ids are checked by the caller.
public func embeddingForward(out: UnsafeMutablePointer<Float>, tokens: UnsafePointer<Int32>, weight: UnsafePointer<Float>,
                             N: Int, C: Int) {
    for n in 0..<N { (out + n * C).update(from: weight + Int(tokens[n]) * C, count: C) }
}

/// dout (N,C), tokens (N) -> dweight (V,C) += dout scattered to the rows of the tokens.
public func embeddingBackward(dweight: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, tokens: UnsafePointer<Int32>,
                              N: Int, C: Int) {
    for n in 0..<N {
        let row = dweight + Int(tokens[n]) * C, d = dout + n * C
        for c in 0..<C { row[c] += d[c] }
    }
}

/// logits (N,V), targets (N) -> losses (N) = log Σ exp(logits) − logits[target], probs (N,V) = softmax(logits).
/// `probs` may be `logits` itself (overwritten). A negative target marks a position without a label:
/// its loss is 0 (its probs are still written).
public func crossEntropyForward(losses: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>,
                                logits: UnsafePointer<Float>, targets: UnsafePointer<Int32>, N: Int, V: Int) {
    for n in 0..<N {
        let row = logits + n * V, p = probs + n * V
        let target = Int(targets[n])
        // Read the target's logit before the row may be overwritten by probs.
        let z = target >= 0 ? row[target] : 0
        if UnsafePointer(p) != row { p.update(from: row, count: V) }
        let lse = softmaxInPlace(p, V)
        losses[n] = target >= 0 ? Float(lse - Double(z)) : 0
    }
}

/// dlosses (N), probs (N,V), targets (N) -> dlogits (N,V) += dloss · (probs − onehot(target)).
/// Unlabelled positions (target < 0) contribute nothing.
public func crossEntropyBackward(dlogits: UnsafeMutablePointer<Float>, dlosses: UnsafePointer<Float>,
                                 probs: UnsafePointer<Float>, targets: UnsafePointer<Int32>, N: Int, V: Int) {
    for n in 0..<N {
        let target = Int(targets[n])
        guard target >= 0 else { continue }
        let d = dlosses[n], p = probs + n * V, g = dlogits + n * V
        for i in 0..<V { g[i] += d * p[i] }
        g[target] -= d
    }
}
