// What every model file reader gives the runtime: a config and named tensors it can dequantize.
import HessianDist

/// A tensor as stored. `shape` is row-major, outermost first: a Linear weight is `[out, in]`
/// (GGUF's `ne` reversed). `type` is the storage type (F32 for llama2.c, F16/BF16/F32 for safetensors).
public struct TensorInfo: Sendable, Equatable {
    public var name: String
    public var shape: [Int]
    public var type: GGMLType
    public init(name: String, shape: [Int], type: GGMLType) {
        self.name = name
        self.shape = shape
        self.type = type
    }
    public var elementCount: Int { shape.reduce(1, *) }
}

/// A model file opened for reading. Tensor names are canonical (`TensorName`); values come back
/// in the layout the config describes (q/k rows in `config.ropeLayout` order, as stored).
public protocol WeightSource: AnyObject, Sendable {
    var path: String { get }
    var format: String { get }
    var config: ModelConfig { get }
    /// Every tensor, in file order.
    var tensors: [TensorInfo] { get }
    /// Dequantize a tensor to fp32 row-major into `out` (count must equal the element count).
    func dequantize(_ name: String, into out: UnsafeMutableBufferPointer<Float>) throws
}

extension WeightSource {
    public func info(_ name: String) throws -> TensorInfo {
        guard let t = tensors.first(where: { $0.name == name }) else {
            throw ModelFormatError(file: path, field: "tensor \(name)", expected: "present", found: "missing",
                                   hint: "the file is not a complete \(config.architecture) model")
        }
        return t
    }

    public func dequantize(_ name: String) throws -> [Float] {
        let n = try info(name).elementCount
        return try [Float](unsafeUninitializedCapacity: n) { buf, count in
            try dequantize(name, into: buf)
            count = n
        }
    }

    /// Checks every tensor the config implies is present with the right shape.
    public func validateShapes() throws {
        for (name, shape) in config.expectedShapes() {
            let t = try info(name)
            if t.shape != shape {
                throw ModelFormatError(file: path, field: "tensor \(name) shape", expected: "\(shape)",
                                       found: "\(t.shape)", hint: "the shape contradicts the model config")
            }
        }
    }
}
