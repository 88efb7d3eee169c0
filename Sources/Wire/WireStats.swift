// Byte counters per message kind: raw payload bytes vs bytes actually on the wire (header included).

/// Counts of messages and bytes, per kind. A value: merge per-rank stats with `+=`.
public struct WireStats: Sendable, Equatable {
    public struct Counter: Sendable, Equatable {
        public var messages = 0
        /// Decoded payload bytes.
        public var rawBytes = 0
        /// Encoded bytes on the wire, header included.
        public var wireBytes = 0
        public init() {}
        /// rawBytes / wireBytes (0 when nothing was sent).
        public var ratio: Double { wireBytes == 0 ? 0 : Double(rawBytes) / Double(wireBytes) }
    }

    public private(set) var byKind: [MessageKind: Counter] = [:]
    public init() {}

    /// Records one message that took `wireBytes` bytes encoded.
    public mutating func record(_ message: WireMessage, wireBytes: Int) {
        record(kind: message.kind, rawBytes: message.payload.count, wireBytes: wireBytes)
    }

    /// Records `messages` messages (one by default) of `kind` with these byte totals.
    public mutating func record(kind: MessageKind, messages: Int = 1, rawBytes: Int, wireBytes: Int) {
        var c = byKind[kind] ?? Counter()
        c.messages += messages
        c.rawBytes += rawBytes
        c.wireBytes += wireBytes
        byKind[kind] = c
    }

    /// All kinds together.
    public var total: Counter {
        var t = Counter()
        for c in byKind.values {
            t.messages += c.messages
            t.rawBytes += c.rawBytes
            t.wireBytes += c.wireBytes
        }
        return t
    }

    public static func += (a: inout WireStats, b: WireStats) {
        for (k, c) in b.byKind {
            var x = a.byKind[k] ?? Counter()
            x.messages += c.messages
            x.rawBytes += c.rawBytes
            x.wireBytes += c.wireBytes
            a.byKind[k] = x
        }
    }
}
