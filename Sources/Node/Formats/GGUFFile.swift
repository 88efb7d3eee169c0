// A GGUF v2/v3 container opened over one memory map: metadata, tensor infos, borrowed tensor bytes.
// Not the model mapping (`GGUFModel`) and not a writer; parsing and validation are in `GGUFFile+Parse.swift`.
import HessianDist

/// One tensor as a GGUF tensor info describes it, with its data range resolved and checked.
public struct GGUFTensorInfo: Sendable, Equatable {
    public let name: String
    /// ggml's `ne`, as stored: the contiguous (innermost) dimension first.
    public let ne: [Int]
    public let type: GGMLType
    /// Absolute byte offset of the data in the file (data section start + the stored relative offset).
    public let offset: Int
    /// Bytes of data: `type.byteCount(elements: elementCount)`.
    public let byteCount: Int

    public init(name: String, ne: [Int], type: GGMLType, offset: Int, byteCount: Int) {
        self.name = name
        self.ne = ne
        self.type = type
        self.offset = offset
        self.byteCount = byteCount
    }

    /// Row-major shape, outermost first (`ne` reversed): a Linear weight is `[out, in]`.
    public var shape: [Int] { ne.reversed() }
    public var elementCount: Int { ne.reduce(1, *) }
}

public final class GGUFFile: Sendable {
    /// "GGUF" read as a little-endian u32.
    public static let magic: UInt32 = 0x4655_4747
    /// Data alignment when `general.alignment` is absent (ggml's `GGUF_DEFAULT_ALIGNMENT`).
    public static let defaultAlignment = 32

    public let path: String
    /// Container version: 2 or 3 (the layouts are the same; v3 allowed big-endian files, which we reject).
    public let version: Int
    /// `general.alignment` or 32: tensor offsets and the data section start are multiples of it.
    public let alignment: Int
    /// Absolute byte offset of the data section.
    public let dataOffset: Int
    public let metadata: GGUFMetadata
    /// Tensor infos in file order.
    public let tensors: [GGUFTensorInfo]
    private let index: [String: Int]
    private let file: MappedFile

    /// Opens and validates `path` (or an already mapped `file`). Every malformed input throws a
    /// `ModelFormatError` naming the field; nothing is sized from an unchecked count.
    public init(path: String, file: MappedFile? = nil) throws {
        let file = try file ?? MappedFile(path: path)
        let parsed = try file.withAllBytes { raw in try GGUFParser.parse(raw, path: path) }
        self.path = path
        self.file = file
        self.version = parsed.version
        self.alignment = parsed.alignment
        self.dataOffset = parsed.dataOffset
        self.metadata = parsed.metadata
        self.tensors = parsed.tensors
        self.index = Dictionary(uniqueKeysWithValues: parsed.tensors.enumerated().map { ($1.name, $0) })
    }

    public func tensor(_ name: String) -> GGUFTensorInfo? { index[name].map { tensors[$0] } }

    /// Borrows the stored bytes of tensor `name` (`byteCount` bytes, aligned to `alignment` in the file).
    public func withTensorBytes<R>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard let t = tensor(name) else {
            throw ModelFormatError(file: path, field: "tensor \(name)", expected: "present", found: "missing")
        }
        return try file.withBytes(offset: t.offset, length: t.byteCount, field: "tensor \(name) data", body)
    }
}
