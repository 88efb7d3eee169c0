// A hash table from byte strings to token ids that looks keys up through borrowed bytes, so the
// tokenizers' inner loops never build a String or an Array to ask "is this piece a token?".
// Not a general dictionary: insert-only, sized once, values are Int32 token ids.

struct ByteStringTable: Sendable {
    private var storage: [UInt8] = []
    private var starts: [Int] = []
    private var lengths: [Int] = []
    private var values: [Int32] = []
    /// Open addressing, linear probing; -1 marks an empty slot, otherwise an entry index.
    private var slots: [Int32]
    private let mask: Int

    init(capacity: Int) {
        var n = 16
        while n < capacity * 2 { n <<= 1 }
        slots = Array(repeating: -1, count: n)
        mask = n - 1
    }

    var count: Int { values.count }

    /// FNV-1a over the bytes.
    @inline(__always)
    private static func hash(_ key: UnsafeBufferPointer<UInt8>) -> Int {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in key { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        return Int(truncatingIfNeeded: h ^ (h >> 29))
    }

    private func slot(of key: UnsafeBufferPointer<UInt8>) -> (slot: Int, found: Bool) {
        var i = Self.hash(key) & mask
        while true {
            let e = Int(slots[i])
            if e < 0 { return (i, false) }
            if lengths[e] == key.count {
                let s = starts[e]
                let same = storage.withUnsafeBufferPointer { st in
                    var j = 0
                    while j < key.count, st[s + j] == key[j] { j += 1 }
                    return j == key.count
                }
                if same { return (i, true) }
            }
            i = (i + 1) & mask
        }
    }

    /// Inserts `key`; when it is already present, `overwrite` decides which id wins.
    mutating func insert(_ key: [UInt8], _ value: Int32, overwrite: Bool) {
        key.withUnsafeBufferPointer { k in
            let (s, found) = slot(of: k)
            if found {
                if overwrite { values[Int(slots[s])] = value }
                return
            }
            slots[s] = Int32(values.count)
            starts.append(storage.count)
            lengths.append(k.count)
            values.append(value)
            storage.append(contentsOf: k)
        }
    }

    func lookup(_ key: UnsafeBufferPointer<UInt8>) -> Int32? {
        let (s, found) = slot(of: key)
        return found ? values[Int(slots[s])] : nil
    }

    func lookup(_ key: [UInt8]) -> Int32? { key.withUnsafeBufferPointer { lookup($0) } }
}

/// A binary min-heap ordered by `less` (the tokenizers' merge queues).
struct MergeHeap<Element> {
    private var items: [Element] = []
    private let less: (Element, Element) -> Bool

    init(less: @escaping (Element, Element) -> Bool) { self.less = less }

    var isEmpty: Bool { items.isEmpty }

    mutating func push(_ e: Element) {
        items.append(e)
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if !less(items[i], items[p]) { break }
            items.swapAt(i, p)
            i = p
        }
    }

    mutating func pop() -> Element? {
        guard !items.isEmpty else { return nil }
        let top = items[0]
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < items.count, less(items[l], items[m]) { m = l }
                if r < items.count, less(items[r], items[m]) { m = r }
                if m == i { break }
                items.swapAt(i, m)
                i = m
            }
        }
        return top
    }
}
