import Foundation
import LoomInference

/// Turns the scheduler's events for one request into OpenAI's response objects: one
/// `chat.completion` / `text_completion`, or the chunks of a stream.
struct CompletionResponder: Sendable {
    let kind: CompletionRequest.Kind
    let id: String
    let created: Int
    let model: String
    /// Sequences of the request (prompts × n).
    let choices: Int
    /// Choices per prompt (`n`): the prompt is counted once per `n` choices in `usage`.
    let promptsPerChoice: Int
    let logprobs: Bool

    struct Choice {
        var text = ""
        var logprobs: [TokenLogprob] = []
        var finishReason: FinishReason?
        var completionTokens = 0
        var promptTokens = 0
        var cachedTokens = 0
    }

    var object: String { kind == .chat ? "chat.completion" : "text_completion" }
    var chunkObject: String { kind == .chat ? "chat.completion.chunk" : "text_completion" }

    func usage(_ state: [Choice]) -> JSONValue {
        var prompt = 0, completion = 0, cached = 0
        for (i, c) in state.enumerated() {
            completion += c.completionTokens
            if i % promptsPerChoice == 0 { prompt += c.promptTokens; cached += c.cachedTokens }
        }
        return .object([("prompt_tokens", .int(prompt)), ("completion_tokens", .int(completion)),
                        ("total_tokens", .int(prompt + completion)),
                        ("prompt_tokens_details", .object([("cached_tokens", .int(cached))]))])
    }

    func logprobsValue(_ entries: [TokenLogprob], textOffset: Int) -> JSONValue {
        guard logprobs else { return .null }
        if kind == .chat {
            return .object([("content", .array(entries.map { e in
                .object([("token", .string(e.token)), ("logprob", .float(e.logprob)),
                         ("bytes", .array(e.bytes.map { .int(Int($0)) })),
                         ("top_logprobs", .array(e.top.map { a in
                             .object([("token", .string(a.token)), ("logprob", .float(a.logprob)),
                                      ("bytes", .array(a.bytes.map { .int(Int($0)) }))])
                         }))])
            }))])
        }
        var offsets: [JSONValue] = [], offset = textOffset
        for e in entries { offsets.append(.int(offset)); offset += e.token.utf16.count }
        return .object([("tokens", .array(entries.map { .string($0.token) })),
                        ("token_logprobs", .array(entries.map { .float($0.logprob) })),
                        ("top_logprobs", .array(entries.map { e in .object(e.top.map { ($0.token, .float($0.logprob)) }) })),
                        ("text_offset", .array(offsets))])
    }

    /// Waits for every sequence and answers with the whole response.
    func collect(_ events: AsyncStream<(Int, SequenceEvent)>) async -> JSONValue {
        var state = [Choice](repeating: Choice(), count: choices)
        var finished = 0
        for await (i, event) in events {
            switch event {
            case .started(let prompt, let cached): state[i].promptTokens = prompt; state[i].cachedTokens = cached
            case .text(let text, let lp): state[i].text += text; state[i].logprobs += lp
            case .finished(let reason, let tokens):
                state[i].finishReason = reason; state[i].completionTokens = tokens
                finished += 1
            }
            if finished == choices { break }
        }
        let list: [JSONValue] = state.enumerated().map { i, c in
            let reason: JSONValue = c.finishReason.map { .string($0.rawValue) } ?? .null
            if kind == .chat {
                return .object([("index", .int(i)),
                                ("message", .object([("role", "assistant"), ("content", .string(c.text))])),
                                ("logprobs", logprobsValue(c.logprobs, textOffset: 0)), ("finish_reason", reason)])
            }
            return .object([("index", .int(i)), ("text", .string(c.text)),
                            ("logprobs", logprobsValue(c.logprobs, textOffset: 0)), ("finish_reason", reason)])
        }
        return .object([("id", .string(id)), ("object", .string(object)), ("created", .int(created)),
                        ("model", .string(model)), ("system_fingerprint", "loom"), ("choices", .array(list)),
                        ("usage", usage(state))])
    }

    func chunk(_ choice: JSONValue?, includeUsage: Bool) -> String {
        var members: [(String, JSONValue)] = [("id", .string(id)), ("object", .string(chunkObject)), ("created", .int(created)),
                                              ("model", .string(model)), ("system_fingerprint", "loom"),
                                              ("choices", .array(choice.map { [$0] } ?? []))]
        if includeUsage { members.append(("usage", .null)) }
        return JSONValue.object(members).serialized
    }

    /// Sends each event as a chunk through `send` (the SSE `data:` payload), then the usage
    /// chunk (empty `choices`) when asked.
    func stream(_ events: AsyncStream<(Int, SequenceEvent)>, includeUsage: Bool,
                send: (String) async throws -> Void) async throws {
        var state = [Choice](repeating: Choice(), count: choices)
        var finished = 0
        for await (i, event) in events {
            var choice: JSONValue?
            switch event {
            case .started(let prompt, let cached):
                state[i].promptTokens = prompt; state[i].cachedTokens = cached
                if kind == .chat {
                    choice = .object([("index", .int(i)), ("delta", .object([("role", "assistant"), ("content", "")])),
                                      ("logprobs", .null), ("finish_reason", .null)])
                }
            case .text(let text, let lp):
                let offset = state[i].text.utf16.count
                state[i].text += text
                choice = kind == .chat
                    ? .object([("index", .int(i)), ("delta", .object([("content", .string(text))])),
                               ("logprobs", logprobsValue(lp, textOffset: offset)), ("finish_reason", .null)])
                    : .object([("index", .int(i)), ("text", .string(text)),
                               ("logprobs", logprobsValue(lp, textOffset: offset)), ("finish_reason", .null)])
            case .finished(let reason, let tokens):
                state[i].finishReason = reason; state[i].completionTokens = tokens
                finished += 1
                choice = kind == .chat
                    ? .object([("index", .int(i)), ("delta", .object([])), ("logprobs", .null), ("finish_reason", .string(reason.rawValue))])
                    : .object([("index", .int(i)), ("text", ""), ("logprobs", .null), ("finish_reason", .string(reason.rawValue))])
            }
            if let choice { try await send(chunk(choice, includeUsage: includeUsage)) }
            if finished == choices { break }
        }
        if includeUsage {
            var members: [(String, JSONValue)] = [("id", .string(id)), ("object", .string(chunkObject)), ("created", .int(created)),
                                                  ("model", .string(model)), ("system_fingerprint", "loom"), ("choices", .array([]))]
            members.append(("usage", usage(state)))
            try await send(JSONValue.object(members).serialized)
        }
    }
}
