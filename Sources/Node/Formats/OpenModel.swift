// Picks the reader for a model path by its content: GGUF magic, a safetensors file or directory,
// or a llama2.c checkpoint (which has no magic: its header must agree with its size).
import Foundation

public func openModel(path: String) throws -> WeightSource {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
        throw ModelFormatError(file: path, field: "path", expected: "an existing model file or directory",
                               found: "nothing there")
    }
    // SKELETON: safetensors dispatch is added when its reader lands.
    let file = try MappedFile(path: path)
    if file.count >= 4 {
        let magic = try file.withBytes(offset: 0, length: 4, field: "magic") { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }
        if magic == GGUFFile.magic { return try GGUFModel(path: path, file: file) }
    }
    return try Llama2cCheckpoint(path: path, file: file)
}
