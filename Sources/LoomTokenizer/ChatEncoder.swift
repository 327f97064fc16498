/// Token ids of a chat prompt (rendered up to the assistant's turn) and of an answer
/// (its content followed by the end-of-turn token), the unit every preference and RL
/// stage scores and the evaluations prompt with (it lives beside `ChatTemplate`, which renders the turns).
public struct ChatEncoder {
    public let tokenizer: ByteLevelBPETokenizer
    public let endOfTurn: Int32

    public init(tokenizer: ByteLevelBPETokenizer) {
        self.tokenizer = tokenizer
        endOfTurn = Int32(tokenizer.tokenID("<|im_end|>") ?? tokenizer.endOfTextID)
    }

    /// The prompt as one user turn plus the assistant header.
    public func prompt(_ text: String) -> [Int32] {
        tokenizer.chatTemplate.encodePrompt([ChatMessage(role: "user", content: text)], tokenizer: tokenizer).map(Int32.init)
    }

    /// An answer's tokens, ending with the end-of-turn token.
    public func response(_ text: String) -> [Int32] {
        tokenizer.encode(text, allowSpecialTokens: false).map(Int32.init) + [endOfTurn]
    }

    /// Text of generated tokens, without a trailing end-of-turn / end-of-text token.
    public func text(_ tokens: [Int32]) -> String {
        let stops: Set<Int32> = [endOfTurn, Int32(tokenizer.endOfTextID)]
        return tokenizer.decode(tokens.filter { !stops.contains($0) }.map(Int.init))
    }

    public var stopTokens: Set<Int32> { [endOfTurn, Int32(tokenizer.endOfTextID)] }
}
