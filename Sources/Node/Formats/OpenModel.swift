// Picks the reader for a model path by its content: GGUF magic, a safetensors file or directory,
// or a llama2.c checkpoint (which has no magic: its header must agree with its size).
import Foundation

public func openModel(path: String) throws -> WeightSource {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
        throw ModelFormatError(file: path, field: "path", expected: "an existing model file or directory",
                               found: "nothing there")
    }
    // Hugging Face checkpoints: a directory, a .safetensors file or a sharded index.
    if isDir.boolValue || path.hasSuffix(".safetensors") || path.hasSuffix(".safetensors.index.json") {
        return try openSafetensorsModel(path: path)
    }
    let file = try MappedFile(path: path)
    let magic: UInt32 = file.count >= 4 ? file.withAllBytes { $0.loadUnaligned(as: UInt32.self) } : 0
    if magic == GGUFFile.magic {
        return try GGUFModel(path: path, file: file)
    }
    return try Llama2cCheckpoint(path: path, file: file)
}
