import Foundation
import LoomTokenizer

/// A multi-turn conversation with a chat model: the history is rendered with the model's chat
/// template before every answer, and trimmed to the context window — the oldest user/assistant
/// exchanges go first, the system prompt and the newest user turn stay.
///
///     let session = ChatSession(model: model, tokenizer: tokenizer, system: "Answer briefly.")
///     let reply = session.reply(to: "What is 2 + 3?", maxTokens: 64, sampling: .greedy) { text in print(text, terminator: ""); return true }
///     session.reset()   // forget the turns, keep the system prompt
public final class ChatSession {
    public let model: LlamaModel
    public let tokenizer: ByteLevelBPETokenizer
    /// The system prompt, sent first in every request (nil: none).
    public var system: String?
    /// The conversation so far: user and assistant turns, alternating.
    public private(set) var turns: [ChatMessage] = []
    let generator: Generator
    let endOfTurn: Int32

    public struct Reply: Sendable {
        public var text: String
        public var tokens: Int
        public var promptTokens: Int
        public var finishReason: FinishReason
        public var decodeTokensPerSecond: Double
        /// User/assistant exchanges left out of this request's prompt to fit the context.
        public var droppedExchanges: Int
    }

    public init(model: LlamaModel, tokenizer: ByteLevelBPETokenizer, system: String? = nil) {
        self.model = model; self.tokenizer = tokenizer; self.system = system
        endOfTurn = Int32(tokenizer.tokenID("<|im_end|>") ?? tokenizer.endOfTextID)
        generator = Generator(model: model, stopTokens: [endOfTurn, Int32(tokenizer.endOfTextID)])
    }

    /// Forgets every turn (the system prompt stays).
    public func reset() { turns = [] }

    /// The prompt for the conversation plus `user`: the newest exchanges that fit with room for
    /// `reserve` new tokens. Throws when the system prompt and `user` alone do not fit.
    public func prompt(for user: String, reserve: Int) throws -> (ids: [Int32], droppedExchanges: Int) {
        try tokenizer.chatTemplate.checkRenderable()
        let window = model.configuration.maxPositionEmbeddings
        let head = system.map { [ChatMessage(role: "system", content: $0)] } ?? []
        let question = ChatMessage(role: "user", content: user)
        var exchanges = stride(from: 0, to: turns.count - 1, by: 2).map { Array(turns[$0..<($0 + 2)]) }
        var dropped = 0
        while true {
            let messages = head + exchanges.flatMap { $0 } + [question]
            let ids = tokenizer.chatTemplate.encodePrompt(messages, tokenizer: tokenizer).map(Int32.init)
            if ids.count + reserve <= window { return (ids, dropped) }
            guard !exchanges.isEmpty else {
                throw ChatError("the system prompt and this message take \(ids.count) tokens; with \(reserve) for the answer that is more than the model's context of \(window) (shorten the message or lower --max-tokens)")
            }
            exchanges.removeFirst()
            dropped += 1
        }
    }

    /// Answers `user`, streaming text to `onText` (which may return false to stop), and keeps
    /// both turns in the history.
    @discardableResult
    public func reply(to user: String, maxTokens: Int, sampling: SamplingParameters, onText: (String) -> Bool = { _ in true }) throws -> Reply {
        let (ids, dropped) = try prompt(for: user, reserve: maxTokens)
        var decoder = UTF8StreamDecoder(tokenizer: tokenizer)
        var stopped = false
        let result = generator.generate(prompt: ids, maxTokens: maxTokens, sampling: sampling) { token in
            let text = decoder.push(token)
            if !text.isEmpty && !onText(text) { stopped = true; return false }
            return true
        }
        let tail = decoder.flush()
        if !tail.isEmpty && !stopped { _ = onText(tail) }
        let answer = tokenizer.decode(result.tokens.map(Int.init))
        turns.append(ChatMessage(role: "user", content: user))
        turns.append(ChatMessage(role: "assistant", content: answer))
        return Reply(text: answer, tokens: result.tokens.count, promptTokens: ids.count, finishReason: result.finishReason,
                     decodeTokensPerSecond: result.decodeTokensPerSecond, droppedExchanges: dropped)
    }
}

public struct ChatError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Turns tokens into text as they arrive, holding back the bytes of an incomplete UTF-8
/// character (a token can end inside one).
public struct UTF8StreamDecoder {
    public let tokenizer: ByteLevelBPETokenizer
    var pending: [UInt8] = []

    public init(tokenizer: ByteLevelBPETokenizer) { self.tokenizer = tokenizer }

    public mutating func push(_ token: Int32) -> String {
        pending += tokenizer.decodeBytes([Int(token)])
        // Emit the longest prefix that is complete UTF-8.
        var end = pending.count
        while end > 0 {
            if String(validating: pending[0..<end], as: UTF8.self) != nil { break }
            end -= 1
            if pending.count - end > 3 { end = pending.count; break }   // invalid bytes: emit as they are
        }
        let text = String(decoding: pending[0..<end], as: UTF8.self)
        pending.removeFirst(end)
        return text
    }

    public mutating func flush() -> String {
        defer { pending = [] }
        return String(decoding: pending, as: UTF8.self)
    }
}
