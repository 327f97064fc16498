import ArgumentParser
import Foundation
import LoomInference
import LoomNN
import LoomTrain

/// `loom merge --model DIR --adapter DIR --out DIR`: folds a PEFT LoRA adapter into the base
/// model's weights (W + alpha/r · B·A) and writes a plain model directory.
struct MergeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Fold a LoRA adapter (PEFT format) into its base model and write a plain model directory.")

    @Option(help: "Base model directory.") var model: String
    @Option(help: "Adapter directory (adapter_config.json, adapter_model.safetensors).") var adapter: String
    @Option(help: "Output model directory.") var out: String

    func run() throws {
        let started = Date()
        let modelURL = URL(fileURLWithPath: model), adapterURL = URL(fileURLWithPath: adapter), outURL = URL(fileURLWithPath: out)
        for (flag, url) in [("--model", modelURL), ("--adapter", adapterURL)] where url.standardizedFileURL.path == outURL.standardizedFileURL.path {
            throw ValidationError("--out \(out) is also \(flag); write the merged model to a new directory")
        }
        // A reward model's adapter carries its score head.
        let scoreHead = try LoRAAdapters.loadSettings(adapterURL).modulesToSave.contains("score")
        let (merged, tokenizer) = try ModelDirectory.load(modelURL, adapter: adapterURL, heads: scoreHead ? .score : nil)
        try merged.save(directory: outURL)
        try tokenizer.save(to: outURL)
        for (source, name) in [(modelURL, "generation_config.json"), (adapterURL, RewardModel.configFile)] {
            let from = source.appendingPathComponent(name), to = outURL.appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: from.path) {
                try? FileManager.default.removeItem(at: to)
                try FileManager.default.copyItem(at: from, to: to)
            }
        }
        logLine(String(format: "merged %@ into %@ → %@ (%.1f s)", adapter, model, out, Date().timeIntervalSince(started)))
    }
}
