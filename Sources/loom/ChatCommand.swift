import ArgumentParser
import Foundation
import LoomInference
import LoomTokenizer
import LoomTrain

/// `loom chat`: a terminal conversation with a chat model. One user turn per line of standard
/// input, so it works typed at a terminal and piped from a file or a script alike.
struct ChatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat",
        abstract: "Talk to a chat model: one user turn per line of standard input, answers streamed to standard output.",
        discussion: """
        The conversation is rendered with the model's chat template before every answer and trimmed to its context: \
        the oldest exchanges go first, the system prompt and the newest message stay. Commands on a line of their \
        own: /reset forgets the conversation, /system TEXT sets the system prompt (and resets), /exit ends (as does \
        the end of input). After each answer, tokens and tokens/s go to standard error.
        """)

    @Option(help: "Model directory.") var model: String
    @Option(help: "LoRA adapter directory (PEFT format), merged into the model at load.") var adapter: String?
    @Option(help: "System prompt.") var system: String?
    @OptionGroup var sampling: SamplingOptions
    @Option(help: "Threads.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1, got \(threads)") }
        guard sampling.maxTokens >= 1 else { throw ValidationError("--max-tokens must be at least 1, got \(sampling.maxTokens)") }
        try sampling.parameters.validate()
    }

    func run() throws {
        Threading.configure(threads: threads)
        let (model, tokenizer) = try loadModelAndTokenizer(model, adapter: adapter)
        try tokenizer.chatTemplate.checkRenderable(file: self.model)
        guard sampling.maxTokens < model.configuration.maxPositionEmbeddings else {
            throw ValidationError("--max-tokens \(sampling.maxTokens) leaves no room for the conversation in the model's context of \(model.configuration.maxPositionEmbeddings)")
        }
        let session = ChatSession(model: model, tokenizer: tokenizer, system: system)
        let interactive = isatty(STDIN_FILENO) != 0
        if interactive { logLine("chat with \(self.model) (context \(model.configuration.maxPositionEmbeddings) tokens); /reset, /system TEXT, /exit") }
        var turn: UInt64 = 0
        while true {
            if interactive { FileHandle.standardError.write(Data("> ".utf8)) }
            guard let line = readLine(strippingNewline: true) else { break }
            let input = line.trimmingCharacters(in: .whitespaces)
            if input.isEmpty { continue }
            if input == "/exit" || input == "/quit" { break }
            if input == "/reset" { session.reset(); logLine("[conversation reset]"); continue }
            if input.hasPrefix("/system") {
                let text = input.dropFirst("/system".count).trimmingCharacters(in: .whitespaces)
                session.system = text.isEmpty ? nil : text
                session.reset()
                logLine(text.isEmpty ? "[system prompt removed; conversation reset]" : "[system prompt set; conversation reset]")
                continue
            }
            if input.hasPrefix("/") { logLine("unknown command \(input.split(separator: " ")[0]); known: /reset, /system TEXT, /exit"); continue }
            // Each turn draws from its own seed, so a conversation replays exactly.
            var parameters = sampling.parameters
            parameters.seed = sampling.seed &+ turn
            turn += 1
            let reply: ChatSession.Reply
            var outputError: Error?
            do {
                reply = try session.reply(to: input, maxTokens: sampling.maxTokens, sampling: parameters) { text in
                    do { try writeStandardOutput(text); return true } catch { outputError = error; return false }
                }
            } catch let error as ChatError {
                logLine("error: \(error)")
                continue
            }
            if outputError == nil { do { try writeStandardOutput("\n") } catch { outputError = error } }
            if let outputError { throw ChatError("cannot write the answer to standard output: \(outputError.localizedDescription)") }
            logLine(String(format: "[%d tokens at %.1f tok/s, %d prompt tokens%@, finish: %@]", reply.tokens, reply.decodeTokensPerSecond,
                           reply.promptTokens, reply.droppedExchanges > 0 ? ", \(reply.droppedExchanges) oldest exchange(s) left out to fit the context" : "",
                           reply.finishReason.rawValue))
        }
    }
}

/// Writes to standard output at once (so answers stream); throws when it cannot be written
/// (a closed pipe, a full disk).
private func writeStandardOutput(_ text: String) throws {
    try FileHandle.standardOutput.write(contentsOf: Data(text.utf8))
}
