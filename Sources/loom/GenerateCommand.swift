import ArgumentParser
import Foundation
import LoomData
import LoomInference
import LoomTokenizer
import LoomTrain

/// A model directory's model and tokenizer, with a LoRA adapter (`--adapter`) merged in if given.
func loadModelAndTokenizer(_ directory: String, adapter: String? = nil) throws -> (LlamaModel, ByteLevelBPETokenizer) {
    let loaded = try ModelDirectory.load(URL(fileURLWithPath: directory), adapter: adapter.map { URL(fileURLWithPath: $0) })
    return (loaded.model, loaded.tokenizer)
}

struct SamplingOptions: ParsableArguments {
    @Option(help: "Maximum new tokens.") var maxTokens: Int = 128
    @Option(help: "Temperature; 0 = greedy.") var temperature: Float = 0.8
    @Option(help: "Keep the k most likely tokens (0 = all).") var topK: Int = 0
    @Option(help: "Nucleus sampling mass.") var topP: Float = 0.95
    @Option(help: "Repetition penalty (1 = none).") var repetitionPenalty: Float = 1
    @Option(help: "Random seed.") var seed: UInt64 = 0

    var parameters: SamplingParameters {
        SamplingParameters(temperature: temperature, topK: topK, topP: topP, repetitionPenalty: repetitionPenalty, seed: seed)
    }
}

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Continue a prompt with a model; the generated text goes to stdout, statistics to stderr.")

    @Option(help: "Model directory.") var model: String
    @Option(help: "LoRA adapter directory (PEFT format), merged into the model at load.") var adapter: String?
    @Option(help: "Prompt text.") var prompt: String
    @OptionGroup var sampling: SamplingOptions
    @Option(help: "Threads.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    @Flag(help: "Render the prompt as a user turn with the chat template.") var chat = false

    func run() throws {
        Threading.configure(threads: threads)
        try sampling.parameters.validate()
        let (model, tokenizer) = try loadModelAndTokenizer(model, adapter: adapter)
        if chat { try tokenizer.chatTemplate.checkRenderable(file: self.model) }
        let text = chat ? tokenizer.chatTemplate.render([ChatMessage(role: "user", content: prompt)], addGenerationPrompt: true) : prompt
        // A plain prompt gets the special tokens the tokenizer adds around a text (Llama 3's
        // <|begin_of_text|>), as transformers and llama.cpp give it; a chat prompt has the
        // template's own.
        let ids = (chat ? tokenizer.encode(text) : tokenizer.encodeAsPrompt(text)).map(Int32.init)
        guard !ids.isEmpty else { throw ValidationError("--prompt is empty") }
        let window = model.configuration.maxPositionEmbeddings
        if ids.count > window - 1 {
            // The rule of `Generator`: the most recent tokens are kept (documented in the README).
            logLine("warning: the prompt has \(ids.count) tokens but the model's context is \(window); "
                    + "keeping its last \(window - 1) tokens (cut from the left)")
        }
        let stops = Generator.endTokens(of: model, tokenizer: tokenizer)
        var decoder = UTF8StreamDecoder(tokenizer: tokenizer)
        var writeError: Error?
        let result = Generator(model: model, stopTokens: stops).generate(prompt: ids, maxTokens: sampling.maxTokens, sampling: sampling.parameters) { token in
            // Stop generating as soon as the text has nowhere to go.
            do { try StandardOutput.write(decoder.push(token)); return true } catch { writeError = error; return false }
        }
        if let writeError { throw writeError }
        try StandardOutput.write(decoder.flush() + "\n")
        logLine(String(format: "[%d prompt tokens at %.0f tok/s, %d generated at %.1f tok/s, finish: %@]",
                       result.promptTokens, result.promptTokensPerSecond, result.tokens.count,
                       result.decodeTokensPerSecond, result.finishReason.rawValue))
    }
}
