import ArgumentParser
import Foundation
import LoomInference
import LoomNN

/// `loom quantize DIR --type q8_0|q4_0|q4_1 --out DIR`: a model directory with its matrices
/// quantized (llama.cpp's block formats), for fast generation.
///
/// ```
/// loom quantize models/smollm2-f32 --type q8_0 --out models/smollm2-q8_0
/// loom generate --model models/smollm2-q8_0 --chat --prompt "What is the capital of France?" --temperature 0
/// ```
struct QuantizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantize",
        abstract: "Quantize a model directory's matrices to Q8_0, Q4_0 or Q4_1 (written as model.gguf beside config.json and the tokenizer).",
        discussion: """
            Norms stay float32. The token embedding (also the output projection when tied) and an untied lm_head \\
            are stored as Q8_0 for the 4-bit types, as llama.cpp gives the output tensor more bits. \\
            Generation keeps the weights quantized; training stages load such a directory dequantized to float32.
            """)

    @Argument(help: "The model directory to quantize (float32 model.safetensors).") var directory: String
    @Option(help: "Block format.") var type: QuantizeType
    @Option(help: "The quantized model directory to write (must not hold model.safetensors).") var out: String
    @Option(help: "Threads.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1, got \(threads)") }
        guard URL(fileURLWithPath: directory).standardizedFileURL != URL(fileURLWithPath: out).standardizedFileURL else {
            throw ValidationError("--out \(out) is the input directory: write the quantized model to a new directory")
        }
    }

    func run() throws {
        Threading.configure(threads: threads)
        let started = Date()
        let blocks = type.blocks
        let summary = try QuantizedModelDirectory.quantize(directory: URL(fileURLWithPath: directory), type: blocks,
                                                           to: URL(fileURLWithPath: out))
        let types = summary.tensorTypes.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        print("quantized \(directory) → \(out)/\(LlamaModel.quantizedWeightsFileName)")
        print(String(format: "  tensors: %@; %.1f MB; %.1f s", types, Double(summary.bytes) / 1e6, Date().timeIntervalSince(started)))
    }
}
