import Foundation
import LoomSupport

/// One turn of a conversation, as in the OpenAI API and SFT JSONL files.
public struct ChatMessage: Codable, Equatable, Sendable {
    public var role: String
    public var content: String
    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// How conversations become text and tokens (ChatML).
///
/// Loom renders natively instead of interpreting Jinja; `jinja` holds the equivalent Hugging
/// Face `chat_template`, written to tokenizer_config.json so that `transformers`'
/// `apply_chat_template` renders the same text (checked by a committed reference).
///
/// ```swift
/// let text = ChatTemplate.chatML.render([ChatMessage(role: "user", content: "Hi")], addGenerationPrompt: true)
/// // "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
/// ```
public struct ChatTemplate: Sendable {
    public var messageStart: String
    public var messageEnd: String
    /// The Jinja text stored as `chat_template`. Setting it also reads the default system
    /// prompt that some ChatML templates insert (see `defaultSystem`).
    public var jinja: String {
        didSet { defaultSystem = Self.defaultSystemPrompt(in: jinja) }
    }
    /// The system message a template inserts when a conversation does not start with one
    /// (SmolLM2's: "You are a helpful AI assistant named SmolLM, trained by Hugging Face"), as
    /// Hugging Face's `apply_chat_template` renders it; nil for Loom's own template.
    public private(set) var defaultSystem: String?

    public static let chatML = ChatTemplate(
        messageStart: "<|im_start|>",
        messageEnd: "<|im_end|>",
        jinja: "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
            + "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    )

    public init(messageStart: String, messageEnd: String, jinja: String) {
        self.messageStart = messageStart
        self.messageEnd = messageEnd
        self.jinja = jinja
        defaultSystem = Self.defaultSystemPrompt(in: jinja)
    }

    /// The default system prompt of a ChatML template of the form
    /// `{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nTEXT<|im_end|>\n' }}{% endif %}`.
    static func defaultSystemPrompt(in jinja: String) -> String? {
        guard jinja.contains("messages[0]['role'] != 'system'") || jinja.contains("messages[0][\"role\"] != \"system\""),
              let start = jinja.range(of: "<|im_start|>system\n"),
              let end = jinja.range(of: "<|im_end|>", range: start.upperBound..<jinja.endIndex) else { return nil }
        let text = String(jinja[start.upperBound..<end.lowerBound])
        // A literal, not an expression (`' + message['content'] + '`).
        return text.contains("'") || text.contains("{") ? nil : text
    }

    /// Why conversations cannot be rendered for this model, or nil when they can. Loom renders
    /// ChatML only; a model whose `chat_template` marks turns otherwise (Llama 3's
    /// `<|start_header_id|>`, Gemma's `<start_of_turn>`, `[INST]` …) would get prompts in a format
    /// it was not trained on, so the chat paths (`loom chat`, `generate --chat`, the server's chat
    /// endpoint, the training stages and evaluations) stop with this message instead.
    public var unsupportedReason: String? {
        guard !(jinja.contains(messageStart) && jinja.contains(messageEnd)) else { return nil }
        let what = Self.firstMarker(in: jinja).map { "it marks turns with \($0)" }
            ?? "its chat_template begins \(JSONString.quoted(jinja.count > 120 ? String(jinja.prefix(120)) + "…" : jinja))"
        return "the model's chat template does not use ChatML's \(messageStart) … \(messageEnd) turns, the only chat format Loom renders "
            + "(\(what)); chatting with it or training it on conversations would use a format it was not trained on. "
            + "Plain-text prompts work: loom generate without --chat, or /v1/completions"
    }

    /// A turn marker: `<|name|>`, `<name>` (letters and `_`) or `[INST]`.
    private static let markerPattern = try? NSRegularExpression(pattern: #"<\|[A-Za-z_]+\|>|<[A-Za-z_]+>|\[INST\]"#)

    /// The first turn marker a template writes, for the message that refuses it.
    static func firstMarker(in jinja: String) -> String? {
        guard let match = markerPattern?.firstMatch(in: jinja, range: NSRange(jinja.startIndex..., in: jinja)),
              let range = Range(match.range, in: jinja) else { return nil }
        return String(jinja[range])
    }

    /// Throws `unsupportedReason`, naming `file` (the tokenizer's directory or file) when known.
    public func checkRenderable(file: String? = nil) throws {
        if let reason = unsupportedReason { throw TokenizerError(file: file, reason) }
    }

    /// `messages` with the template's default system message in front when they need it.
    public func withDefaultSystem(_ messages: [ChatMessage]) -> [ChatMessage] {
        guard let defaultSystem, messages.first?.role != "system" else { return messages }
        return [ChatMessage(role: "system", content: defaultSystem)] + messages
    }

    /// "<|im_start|>{role}\n{content}<|im_end|>\n" per message, then "<|im_start|>assistant\n"
    /// when `addGenerationPrompt`.
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool) -> String {
        var text = ""
        for message in withDefaultSystem(messages) {
            text += messageStart + message.role + "\n" + message.content + messageEnd + "\n"
        }
        if addGenerationPrompt { text += messageStart + "assistant\n" }
        return text
    }

    /// Token ids of the rendered conversation and a mask that is true exactly on the tokens
    /// of assistant content and the `<|im_end|>` that closes each assistant message — the
    /// tokens SFT computes its loss on (the model must learn to stop, not to write headers).
    ///
    /// The conversation is encoded piece by piece — marker, "role\n", content, marker, "\n" —
    /// rather than as one string, for two reasons. The mask boundaries then fall on token
    /// boundaries by construction. And it is what the model sees at generation time: the
    /// prompt ends with the "\n" after "assistant" and the model writes content tokens after
    /// it, so content must not be merged with that newline (which a whole-string encode would
    /// do when content starts with whitespace). For content that does not start with
    /// whitespace and contains no special-token text the ids equal
    /// `tokenizer.encode(render(messages, addGenerationPrompt: false))`.
    /// Content is encoded with `allowSpecialTokens: false`: text in a message can never
    /// forge a turn boundary.
    public func encodeForTraining(_ messages: [ChatMessage], tokenizer: ByteLevelBPETokenizer) -> (ids: [Int], assistantMask: [Bool]) {
        var ids: [Int] = []
        var mask: [Bool] = []
        let newline = tokenizer.encode("\n", allowSpecialTokens: false)
        func append(_ tokens: [Int], _ trained: Bool) {
            ids += tokens
            mask += repeatElement(trained, count: tokens.count)
        }
        for message in withDefaultSystem(messages) {
            let isAssistant = message.role == "assistant"
            append(marker(messageStart, tokenizer), false)
            append(tokenizer.encode(message.role, allowSpecialTokens: false) + newline, false)
            append(tokenizer.encode(message.content, allowSpecialTokens: false), isAssistant)
            append(marker(messageEnd, tokenizer), isAssistant)
            append(newline, false)
        }
        return (ids, mask)
    }

    /// Prompt ids for generation, segmented exactly as `encodeForTraining` segments the same
    /// messages, followed by the generation prompt "<|im_start|>assistant\n".
    public func encodePrompt(_ messages: [ChatMessage], tokenizer: ByteLevelBPETokenizer) -> [Int] {
        var ids = encodeForTraining(messages, tokenizer: tokenizer).ids
        ids += marker(messageStart, tokenizer)
        ids += tokenizer.encode("assistant", allowSpecialTokens: false) + tokenizer.encode("\n", allowSpecialTokens: false)
        return ids
    }

    /// A marker is its special token when the tokenizer has it (Loom's always does); a
    /// tokenizer without it (plain GPT-2) spells it as text.
    private func marker(_ text: String, _ tokenizer: ByteLevelBPETokenizer) -> [Int] {
        if let id = tokenizer.addedTokenID(text) { return [id] }
        return tokenizer.encode(text, allowSpecialTokens: false)
    }
}
