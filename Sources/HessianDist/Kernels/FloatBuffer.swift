// The owner of one flat fp32 allocation (parameters or activations), split into named views by offset.

/// A 64-byte aligned, zero-initialised fp32 buffer freed in `deinit`. Kernels get raw pointers only
/// through `base + offset`; offsets come from a sizes table built once.
public final class FloatBuffer: @unchecked Sendable {
    public let count: Int
    public let base: UnsafeMutablePointer<Float>

    public init(count: Int) {
        precondition(count >= 0, "negative buffer size")
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
        raw.initializeMemory(as: Float.self, repeating: 0, count: max(count, 1))
        base = raw.assumingMemoryBound(to: Float.self)
    }

    deinit { UnsafeMutableRawPointer(base).deallocate() }

    /// The view at `offset` of `length` floats (checked).
    public func view(_ offset: Int, _ length: Int) -> UnsafeMutablePointer<Float> {
        precondition(offset >= 0 && length >= 0 && offset + length <= count, "view [\(offset), +\(length)) outside \(count)")
        return base + offset
    }

    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: base, count: count) }
    public func toArray() -> [Float] { Array(buffer) }
}

/// Lays out named tensors one after another in a flat buffer.
public struct BufferLayout: Sendable {
    public private(set) var offsets: [String: Int] = [:]
    public private(set) var sizes: [String: Int] = [:]
    public private(set) var total = 0
    public init() {}

    /// Adds `name` of `count` floats, 16-float aligned so every view starts on a 64-byte boundary.
    @discardableResult
    public mutating func add(_ name: String, _ count: Int) -> Int {
        precondition(offsets[name] == nil, "duplicate view \(name)")
        let at = (total + 15) & ~15
        offsets[name] = at
        sizes[name] = count
        total = at + count
        return at
    }

    public func offset(_ name: String) -> Int {
        guard let o = offsets[name] else { preconditionFailure("no view \(name)") }
        return o
    }
}
