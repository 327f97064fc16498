import Foundation
import LoomInference
import LoomTokenizer

/// An error answered in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
public struct APIError: Error, CustomStringConvertible {
    public var status: Int
    public var message: String
    public var type: String
    public var param: String?
    public var code: String?

    public var description: String { message }

    static func invalid(_ message: String, param: String? = nil, code: String? = nil) -> APIError {
        APIError(status: 400, message: message, type: "invalid_request_error", param: param, code: code)
    }

    var body: JSONValue {
        .object([("error", .object([
            ("message", .string(message)), ("type", .string(type)),
            ("param", param.map(JSONValue.string) ?? .null), ("code", code.map(JSONValue.string) ?? .null),
        ]))])
    }
}

/// A parsed, checked `/v1/chat/completions` or `/v1/completions` request.
struct CompletionRequest {
    enum Kind { case chat, completion }
    var kind: Kind
    /// One prompt per entry (chat: one; completions: one per prompt of the `prompt` list).
    var prompts: [[Int32]]
    var n = 1
    var stream = false
    var includeUsage = false
    var maxTokens: Int?
    var temperature: Float = 1
    var topP: Float = 1
    var topK = 0
    var seed: UInt64?
    var presencePenalty: Float = 0
    var frequencyPenalty: Float = 0
    var logitBias: [Int32: Float] = [:]
    var stop: [String] = []
    var topLogprobs: Int?
    var jsonObject = false

    /// The sequences to run: choice i of prompt p is entry p·n + i, seeded with seed + i.
    func sequences(context: Int) throws -> [SequenceSpec] {
        var specs: [SequenceSpec] = []
        let baseSeed = seed ?? UInt64.random(in: 0...UInt64(Int64.max))
        for (p, prompt) in prompts.enumerated() {
            let room = context - prompt.count
            guard room >= 1 else {
                throw APIError.invalid("This model's context is \(context) tokens; the prompt\(prompts.count > 1 ? " \(p)" : "") has \(prompt.count) tokens, which leaves no room for an answer. Shorten the prompt.",
                                       param: kind == .chat ? "messages" : "prompt", code: "context_length_exceeded")
            }
            if let maxTokens, maxTokens > room {
                throw APIError.invalid("This model's context is \(context) tokens; the prompt has \(prompt.count) tokens and max_tokens asks for \(maxTokens) more (at most \(room) fit).",
                                       param: "max_tokens", code: "context_length_exceeded")
            }
            for i in 0..<n {
                var spec = SequenceSpec(prompt: prompt, maxTokens: maxTokens ?? room,
                                        sampling: SamplingParameters(temperature: temperature, topK: topK, topP: topP,
                                                                     seed: baseSeed &+ UInt64(i)))
                spec.presencePenalty = presencePenalty
                spec.frequencyPenalty = frequencyPenalty
                spec.logitBias = logitBias
                spec.stop = stop
                spec.topLogprobs = topLogprobs
                spec.jsonObject = jsonObject
                specs.append(spec)
            }
        }
        return specs
    }
}

/// Reads the fields of a request body, each checked for its JSON type and range; unknown
/// fields are ignored, as OpenAI-compatible servers do.
struct RequestReader {
    let body: JSONValue
    let tokenizer: ByteLevelBPETokenizer
    let maxChoices: Int

    init(body: JSONValue, tokenizer: ByteLevelBPETokenizer, maxChoices: Int) throws {
        guard case .object = body else { throw APIError.invalid("The request body must be a JSON object, not \(body.typeName).") }
        self.body = body; self.tokenizer = tokenizer; self.maxChoices = maxChoices
    }

    func present(_ key: String) -> JSONValue? {
        guard let v = body[key], v != .null else { return nil }
        return v
    }

    func number(_ key: String, in range: ClosedRange<Double>) throws -> Double? {
        guard let v = present(key) else { return nil }
        guard case .number(let x) = v else { throw APIError.invalid("'\(key)' must be a number, not \(v.typeName).", param: key) }
        guard range.contains(x) else {
            throw APIError.invalid("'\(key)' must be between \(Self.show(range.lowerBound)) and \(Self.show(range.upperBound)); got \(Self.show(x)).", param: key)
        }
        return x
    }

    func integer(_ key: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let v = present(key) else { return nil }
        guard case .number(let x) = v, x == x.rounded(), abs(x) < 9e15 else {
            throw APIError.invalid("'\(key)' must be an integer, not \(v == .null ? "null" : v.serialized).", param: key)
        }
        guard range.contains(Int(x)) else {
            throw APIError.invalid("'\(key)' must be between \(range.lowerBound) and \(range.upperBound); got \(Int(x)).", param: key)
        }
        return Int(x)
    }

    func bool(_ key: String) throws -> Bool? {
        guard let v = present(key) else { return nil }
        guard case .bool(let b) = v else { throw APIError.invalid("'\(key)' must be a boolean, not \(v.typeName).", param: key) }
        return b
    }

    static func show(_ x: Double) -> String { x == x.rounded() && abs(x) < 1e15 ? String(Int64(x)) : String(x) }

    /// The sampling fields shared by both endpoints.
    func common(_ request: inout CompletionRequest, context: Int) throws {
        if let v = present("model"), case .string = v {} else if let v = present("model") {
            throw APIError.invalid("'model' must be a string, not \(v.typeName).", param: "model")
        }
        let maxKey = present("max_completion_tokens") != nil ? "max_completion_tokens" : "max_tokens"
        if let v = present(maxKey), case .number(let x) = v, x == x.rounded(), x < 1 {
            throw APIError.invalid("'\(maxKey)' must be at least 1; got \(Self.show(x)).", param: maxKey)
        }
        request.maxTokens = try integer(maxKey, in: 1...Int(Int32.max))
        if let t = try number("temperature", in: 0...2) { request.temperature = Float(t) }
        if let p = try number("top_p", in: 0...1) {
            guard p > 0 else { throw APIError.invalid("'top_p' must be greater than 0; got 0.", param: "top_p") }
            request.topP = Float(p)
        }
        if let k = try integer("top_k", in: -1...Int(Int32.max)) { request.topK = max(k, 0) }
        if let s = try integer("seed", in: Int(Int64.min / 2)...Int(Int64.max / 2)) { request.seed = UInt64(bitPattern: Int64(s)) }
        if let n = try integer("n", in: 1...maxChoices) { request.n = n }
        if let p = try number("presence_penalty", in: -2...2) { request.presencePenalty = Float(p) }
        if let p = try number("frequency_penalty", in: -2...2) { request.frequencyPenalty = Float(p) }
        request.logitBias = try logitBias()
        try refuseToolCalls()
        request.stream = try bool("stream") ?? false
        if let options = present("stream_options") {
            guard case .object = options else {
                throw APIError.invalid("'stream_options' must be an object, not \(options.typeName).", param: "stream_options")
            }
            guard request.stream else {
                throw APIError.invalid("'stream_options' is only allowed when 'stream' is true.", param: "stream_options")
            }
            if let include = options["include_usage"], include != .null {
                guard case .bool(let b) = include else {
                    throw APIError.invalid("'stream_options.include_usage' must be a boolean, not \(include.typeName).", param: "stream_options.include_usage")
                }
                request.includeUsage = b
            }
        }
        if let stop = present("stop") {
            switch stop {
            case .string(let s): request.stop = [s]
            case .array(let items):
                guard items.count <= 4 else { throw APIError.invalid("'stop' takes at most 4 sequences; got \(items.count).", param: "stop") }
                request.stop = try items.map {
                    guard case .string(let s) = $0 else { throw APIError.invalid("'stop' must be a string or a list of strings.", param: "stop") }
                    return s
                }
            default: throw APIError.invalid("'stop' must be a string or a list of strings, not \(stop.typeName).", param: "stop")
            }
        }
        if let format = present("response_format") {
            guard case .object = format, let typeValue = format["type"], case .string(let type) = typeValue else {
                throw APIError.invalid("'response_format' must be an object with a string 'type'.", param: "response_format")
            }
            switch type {
            case "text": break
            case "json_object": request.jsonObject = true
            default:
                throw APIError.invalid("'response_format.type' \(typeValue.serialized) is not supported; use \"text\" or \"json_object\".",
                                       param: "response_format.type")
            }
        }
    }

    /// `logit_bias`: an object from token ids (as strings, OpenAI's form) to biases in −100 … 100.
    func logitBias() throws -> [Int32: Float] {
        guard let value = present("logit_bias") else { return [:] }
        guard case .object(let entries) = value else {
            throw APIError.invalid("'logit_bias' must be an object mapping token ids to biases, not \(value.typeName).", param: "logit_bias")
        }
        let vocabulary = tokenizer.vocabularySize
        var bias: [Int32: Float] = [:]
        for (key, entry) in entries {
            guard let id = Int(key), id >= 0, id < vocabulary, String(id) == key else {
                throw APIError.invalid("Invalid key in 'logit_bias': \(JSONValue.string(key).serialized) is not a token id (0 to \(vocabulary - 1)).",
                                       param: "logit_bias")
            }
            guard case .number(let x) = entry, (-100...100).contains(x) else {
                throw APIError.invalid("Invalid value for 'logit_bias' of token \(key): expected a number between -100 and 100, got \(entry.serialized).",
                                       param: "logit_bias")
            }
            bias[Int32(id), default: 0] = Float(x)
        }
        return bias
    }

    /// Tool and function calling are not implemented: a request that offers tools gets an error
    /// rather than an answer that silently ignores them. Empty lists and "none" ask for nothing.
    func refuseToolCalls() throws {
        for key in ["tools", "functions"] {
            guard let value = present(key) else { continue }
            if case .array(let items) = value, items.isEmpty { continue }
            throw APIError.invalid("'\(key)' is not supported: this server does not do tool or function calling.", param: key)
        }
        for key in ["tool_choice", "function_call"] {
            guard let value = present(key), value != .string("none") else { continue }
            throw APIError.invalid("'\(key)' is not supported: this server does not do tool or function calling (only \"none\" is accepted).",
                                   param: key)
        }
    }

    /// `/v1/chat/completions`.
    func chat(context: Int) throws -> CompletionRequest {
        if let reason = tokenizer.chatTemplate.unsupportedReason {
            throw APIError.invalid("This model cannot be used for chat completions: \(reason).", param: "messages")
        }
        guard let messagesValue = body["messages"] else {
            throw APIError.invalid("Missing required parameter: 'messages'.", param: "messages", code: "missing_required_parameter")
        }
        guard case .array(let items) = messagesValue else {
            throw APIError.invalid("'messages' must be a list of messages, not \(messagesValue.typeName).", param: "messages")
        }
        guard !items.isEmpty else { throw APIError.invalid("'messages' must contain at least one message.", param: "messages") }
        var messages: [ChatMessage] = []
        for (i, item) in items.enumerated() {
            let at = "messages[\(i)]"
            guard case .object = item else { throw APIError.invalid("'\(at)' must be an object, not \(item.typeName).", param: at) }
            guard let roleValue = item["role"], case .string(let role) = roleValue else {
                throw APIError.invalid("'\(at).role' is required and must be a string.", param: "\(at).role")
            }
            let known = ["system": "system", "developer": "system", "user": "user", "assistant": "assistant"]
            guard let mapped = known[role] else {
                throw APIError.invalid("'\(at).role' is \(roleValue.serialized); expected one of \"system\", \"developer\", \"user\", \"assistant\".",
                                       param: "\(at).role")
            }
            messages.append(ChatMessage(role: mapped, content: try Self.content(item["content"], at: "\(at).content")))
        }
        var request = CompletionRequest(kind: .chat, prompts: [])
        try common(&request, context: context)
        if let wants = try bool("logprobs"), wants {
            request.topLogprobs = try integer("top_logprobs", in: 0...20) ?? 0
        } else if present("top_logprobs") != nil {
            throw APIError.invalid("'top_logprobs' needs 'logprobs' set to true.", param: "top_logprobs")
        }
        request.prompts = [tokenizer.chatTemplate.encodePrompt(messages, tokenizer: tokenizer).map(Int32.init)]
        return request
    }

    /// A message's content: a string, or a list of text parts.
    static func content(_ value: JSONValue?, at: String) throws -> String {
        switch value {
        case .string(let s)?: return s
        case .array(let parts)?:
            return try parts.enumerated().map { j, part in
                guard case .object = part, part["type"] == .string("text"), let textValue = part["text"], case .string(let text) = textValue else {
                    throw APIError.invalid("'\(at)[\(j)]' must be a text part ({\"type\": \"text\", \"text\": ...}); other kinds of content are not supported by this model.",
                                           param: "\(at)[\(j)]")
                }
                return text
            }.joined()
        case nil, .null?: throw APIError.invalid("'\(at)' is required and must be a string.", param: at)
        case let other?: throw APIError.invalid("'\(at)' must be a string or a list of text parts, not \(other.typeName).", param: at)
        }
    }

    /// `/v1/completions`.
    func completion(context: Int, vocabulary: Int) throws -> CompletionRequest {
        guard let promptValue = body["prompt"] else {
            throw APIError.invalid("Missing required parameter: 'prompt'.", param: "prompt", code: "missing_required_parameter")
        }
        var prompts: [[Int32]] = []
        func ids(_ items: [JSONValue], at: String) throws -> [Int32] {
            try items.map {
                guard case .number(let x) = $0, x == x.rounded(), x >= 0, x < Double(vocabulary) else {
                    throw APIError.invalid("'\(at)' holds \($0.serialized), which is not a token id (0 to \(vocabulary - 1)).", param: "prompt")
                }
                return Int32(x)
            }
        }
        switch promptValue {
        case .string(let s): prompts = [tokenizer.encodeAsPrompt(s).map(Int32.init)]
        case .array(let items) where items.isEmpty:
            throw APIError.invalid("'prompt' must not be empty.", param: "prompt")
        case .array(let items):
            if items.allSatisfy({ if case .string = $0 { return true }; return false }) {
                prompts = items.map { if case .string(let s) = $0 { return tokenizer.encodeAsPrompt(s).map(Int32.init) }; return [] }
            } else if items.allSatisfy({ if case .number = $0 { return true }; return false }) {
                prompts = [try ids(items, at: "prompt")]
            } else if items.allSatisfy({ if case .array = $0 { return true }; return false }) {
                prompts = try items.enumerated().map { i, item in
                    guard case .array(let inner) = item else { return [] }
                    return try ids(inner, at: "prompt[\(i)]")
                }
            } else {
                throw APIError.invalid("'prompt' must be a string, a list of strings, a list of token ids or a list of such lists.", param: "prompt")
            }
        default:
            throw APIError.invalid("'prompt' must be a string or a list, not \(promptValue.typeName).", param: "prompt")
        }
        if let i = prompts.firstIndex(where: { $0.isEmpty }) {
            throw APIError.invalid("prompt \(i) is empty: a completion needs at least one prompt token.", param: "prompt")
        }
        var request = CompletionRequest(kind: .completion, prompts: prompts)
        try common(&request, context: context)
        if prompts.count * request.n > maxChoices {
            throw APIError.invalid("\(prompts.count) prompts × n = \(request.n) is more than the \(maxChoices) sequences one request may run.", param: "n")
        }
        request.topLogprobs = try integer("logprobs", in: 0...5)
        if let suffix = present("suffix") {
            throw APIError.invalid("'suffix' is not supported (got \(suffix.typeName)).", param: "suffix")
        }
        if try bool("echo") == true { throw APIError.invalid("'echo' is not supported.", param: "echo") }
        if let bestOf = try integer("best_of", in: 0...Int(Int32.max)), bestOf != 1 {
            throw APIError.invalid("'best_of' is not supported (got \(bestOf)); use 'n' for several completions.", param: "best_of")
        }
        return request
    }
}
