import Foundation

/// The tokenizer a GGUF file describes in its `tokenizer.ggml.*` and `tokenizer.chat_template`
/// metadata, as plain values (LoomTokenizer does not read GGUF itself; LoomNN's `GGUFFile` does).
public struct GGUFVocabulary: Sendable {
    /// `tokenizer.ggml.model`: Loom reads "gpt2" (byte-level BPE).
    public var model: String
    /// `tokenizer.ggml.pre`: the pre-tokenizer's llama.cpp name; nil means llama.cpp's "default".
    public var preTokenizer: String?
    /// `tokenizer.ggml.tokens`, in id order.
    public var tokens: [String]
    /// `tokenizer.ggml.token_type`: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
    public var tokenTypes: [Int]?
    /// `tokenizer.ggml.merges`, "left right" in rank order.
    public var merges: [String]
    public var bosID: Int?
    public var eosID: Int?
    public var unknownID: Int?
    public var paddingID: Int?
    public var addBOSToken: Bool?
    public var chatTemplate: String?
    /// The model's context length, written as `model_max_length`.
    public var contextLength: Int?

    public init(model: String, preTokenizer: String?, tokens: [String], tokenTypes: [Int]?, merges: [String]) {
        self.model = model
        self.preTokenizer = preTokenizer
        self.tokens = tokens
        self.tokenTypes = tokenTypes
        self.merges = merges
    }

    /// llama.cpp's token type of control tokens (`<|endoftext|>`, `<|im_start|>` …).
    static let controlType = 3
    /// llama.cpp's token type of user-defined added tokens (matched whole, not special).
    static let userDefinedType = 4
}

extension ByteLevelBPETokenizer {
    /// The tokenizer of a GGUF file, built as Hugging Face `transformers` builds it from the
    /// same metadata (byte-level BPE; control tokens become special added tokens and
    /// user-defined ones plain added tokens; a token spelled outside the byte-level alphabet is
    /// respelled from its UTF-8 bytes), except for the pre-tokenizer: Loom uses the one named
    /// by `tokenizer.ggml.pre` (as llama.cpp does), and refuses a name it does not implement
    /// rather than guess. `file` names the GGUF in errors.
    public convenience init(gguf vocabulary: GGUFVocabulary, file: String) throws {
        guard vocabulary.model == "gpt2" else {
            throw TokenizerError(file: file, "tokenizer.ggml.model \"\(vocabulary.model)\" is not supported (Loom reads byte-level BPE, \"gpt2\")")
        }
        let preName = vocabulary.preTokenizer ?? "default"
        guard let pattern = PreTokenizerPattern(llamaCppName: preName) else {
            throw TokenizerError(file: file, "tokenizer.ggml.pre \"\(preName)\" is not a pre-tokenizer Loom implements (known: \(PreTokenizerPattern.llamaCppNames.joined(separator: ", ")))")
        }
        let tokens = vocabulary.tokens
        guard !tokens.isEmpty else { throw TokenizerError(file: file, "tokenizer.ggml.tokens is empty") }
        if let types = vocabulary.tokenTypes, types.count != tokens.count {
            throw TokenizerError(file: file, "tokenizer.ggml.token_type has \(types.count) entries, tokenizer.ggml.tokens \(tokens.count)")
        }
        let alphabet = Set(ByteLevel.byteToScalar)
        var vocab: [String: Int] = [:]
        vocab.reserveCapacity(tokens.count)
        var addedTokens: [AddedToken] = []
        for (id, token) in tokens.enumerated() {
            let inAlphabet = token.unicodeScalars.allSatisfy { alphabet.contains($0) }
            let spelling = inAlphabet ? token : String(String.UnicodeScalarView(token.utf8.map { ByteLevel.byteToScalar[Int($0)] }))
            // A repeated spelling keeps its last id, as a Python dict built in id order does.
            vocab[spelling] = id
            switch vocabulary.tokenTypes?[id] {
            case GGUFVocabulary.controlType? where inAlphabet:
                addedTokens.append(AddedToken(id: id, content: token, special: true))
            case GGUFVocabulary.userDefinedType?:
                addedTokens.append(AddedToken(id: id, content: token, special: false))
            default:
                break
            }
        }
        var merges: [(left: String, right: String)] = []
        merges.reserveCapacity(vocabulary.merges.count)
        for (rank, merge) in vocabulary.merges.enumerated() {
            let sides = merge.split(separator: " ", omittingEmptySubsequences: false)
            guard sides.count == 2 else {
                throw TokenizerError(file: file, "tokenizer.ggml.merges[\(rank)] \(merge.debugDescription) is not \"left right\"")
            }
            merges.append((String(sides[0]), String(sides[1])))
        }
        func token(_ id: Int?, _ key: String) throws -> String? {
            guard let id else { return nil }
            guard id >= 0 && id < tokens.count else {
                throw TokenizerError(file: file, "tokenizer.ggml.\(key) \(id) is not an id below the vocabulary size \(tokens.count)")
            }
            return tokens[id]
        }
        var parts = TokenizerParts(modelVocab: vocab, merges: merges, addedTokens: addedTokens, pattern: pattern)
        parts.bosToken = try token(vocabulary.bosID, "bos_token_id")
        parts.eosToken = try token(vocabulary.eosID, "eos_token_id")
        parts.unknownToken = try token(vocabulary.unknownID, "unknown_token_id")
        parts.padToken = try token(vocabulary.paddingID, "padding_token_id")
        parts.addBOSToken = vocabulary.addBOSToken ?? false
        // llama.cpp (and transformers reading the GGUF) put the BOS token before every prompt.
        if parts.addBOSToken, let bos = vocabulary.bosID { parts.prefixTokenIDs = [bos] }
        parts.chatTemplateJinja = vocabulary.chatTemplate
        parts.modelMaxLength = vocabulary.contextLength
        try self.init(parts: parts, file: file)
    }
}

extension ByteLevelBPETokenizer {
    /// This tokenizer as GGUF metadata (the inverse of `init(gguf:file:)`): every id's token
    /// (its tokenizer.json spelling, or an added token's text), control type for special added
    /// tokens and user-defined for the others, the merges, the pre-tokenizer's name, the
    /// special token ids and the chat template. GGUF cannot say "add a prefix space" or
    /// "normalise to NFC", so a tokenizer that does either is refused (`file` names it).
    public func ggufVocabulary(file: String) throws -> GGUFVocabulary {
        if parts.addPrefixSpace || parts.normalizeNFC {
            throw TokenizerError(file: file, "a tokenizer with add_prefix_space or an NFC normalizer cannot be written to GGUF metadata")
        }
        var tokens = [String](repeating: "", count: vocabularySize)
        var types = [Int](repeating: 1, count: vocabularySize)
        for (spelling, id) in parts.modelVocab { tokens[id] = spelling }
        for token in parts.addedTokens {
            tokens[token.id] = token.content
            types[token.id] = token.special ? GGUFVocabulary.controlType : GGUFVocabulary.userDefinedType
        }
        var vocabulary = GGUFVocabulary(model: "gpt2", preTokenizer: parts.pattern.llamaCppName, tokens: tokens, tokenTypes: types,
                                        merges: parts.merges.map { $0.left + " " + $0.right })
        vocabulary.eosID = endOfTextID
        vocabulary.bosID = parts.bosToken.flatMap { tokenIndex[$0] }
        vocabulary.paddingID = padID
        vocabulary.unknownID = parts.unknownToken.flatMap { tokenIndex[$0] }
        // What Loom adds before a prompt (tokenizer.json's post-processor) is what llama.cpp must add.
        let prefix = parts.prefixTokenIDs
        guard parts.suffixTokenIDs.isEmpty, prefix.isEmpty || (prefix.count == 1 && prefix[0] == vocabulary.bosID) else {
            throw TokenizerError(file: file, "the tokenizer adds \(prefix) before and \(parts.suffixTokenIDs) after a prompt; GGUF metadata can only say \"add the BOS token\" (bos_token \(vocabulary.bosID.map(String.init) ?? "none"))")
        }
        vocabulary.addBOSToken = !prefix.isEmpty
        vocabulary.chatTemplate = chatTemplate.jinja
        vocabulary.contextLength = modelMaxLength
        return vocabulary
    }
}
