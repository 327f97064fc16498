import ArgumentParser
import Foundation
import LoomInference
import LoomNN

/// `loom import gguf FILE --out DIR`: a GGUF Llama model (llama.cpp's format) as a Loom /
/// Hugging Face model directory.
///
/// ```
/// loom import gguf SmolLM2-135M-Instruct.Q4_1.gguf --out models/smollm2
/// loom generate --model models/smollm2 --chat --prompt "What is the capital of France?" --temperature 0
/// ```
struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import a model from another format into a Loom / Hugging Face model directory.",
        subcommands: [ImportGGUFCommand.self])
}

struct ImportGGUFCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gguf",
        abstract: "Import a GGUF Llama model: config.json, model.safetensors (float32, Hugging Face names), tokenizer files.",
        discussion: """
            With --dtype keep, Q8_0, Q4_0 and Q4_1 matrices stay quantized: the directory then holds model.gguf \
            (a llama.cpp GGUF file) instead of model.safetensors, and generation runs on the quantized weights. \
            Tensors of other types are dequantized to float32.
            """)

    @Argument(help: "The .gguf file.") var file: String
    @Option(help: "The model directory to write.") var out: String
    @Option(help: "Weight type of the written model: f32 (every weight dequantized) or keep (Q8_0, Q4_0, Q4_1 matrices stay quantized).")
    var dtype: ImportWeightType = .f32

    func run() throws {
        let started = Date()
        let summary = try GGUFImport.importModel(from: URL(fileURLWithPath: file), to: URL(fileURLWithPath: out),
                                                 keepQuantized: dtype == .keep)
        let c = summary.configuration
        let types = summary.tensorTypes.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        print("imported \(file) → \(out)")
        print("  llama: \(c.layerCount) layers, hidden \(c.hiddenSize), \(c.headCount) heads (\(c.kvHeadCount) KV), "
              + "intermediate \(c.intermediateSize), vocabulary \(c.vocabularySize), rope θ \(c.ropeTheta), "
              + "\(c.tieWordEmbeddings ? "tied" : "untied") embeddings")
        if let stored = summary.storedTypes {
            let written = stored.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
            print("  tensors: \(types); written to model.gguf as \(written)")
            let keepable = Set(BlockQuantization.allCases.map(\.rawValue) + ["F32"])
            let converted = summary.tensorTypes.filter { !keepable.contains($0.key) }.sorted { $0.key < $1.key }
            if !converted.isEmpty {
                print("  dequantized to F32 (Loom keeps only Q8_0, Q4_0 and Q4_1 quantized): "
                      + converted.map { "\($0.value) \($0.key)" }.joined(separator: ", "))
            }
        } else {
            print("  tensors: \(types); \(summary.parameterCount) parameters written as float32")
        }
        print("  tokenizer: \(summary.vocabularySize) tokens, pre-tokenizer \(summary.preTokenizer)")
        print(String(format: "  %.1f s", Date().timeIntervalSince(started)))
    }
}
