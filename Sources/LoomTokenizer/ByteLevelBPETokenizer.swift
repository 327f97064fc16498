import Foundation

/// Everything that defines a tokenizer, in tokenizer.json terms. Training and loading both
/// produce one; `ByteLevelBPETokenizer.init(parts:file:)` compiles it into lookup tables and
/// `tokenizerJSON()` writes it back.
struct TokenizerParts {
    /// The BPE model's vocabulary: JSON spelling (GPT-2 byte-level string) → id.
    var modelVocab: [String: Int]
    /// Merges in rank order, in JSON spelling.
    var merges: [(left: String, right: String)]
    var addedTokens: [AddedToken]
    var pattern: PreTokenizerPattern
    var addPrefixSpace = false
    var ignoreMerges = false
    var normalizeNFC = false
    var eosToken: String?
    var bosToken: String?
    var padToken: String?
    var unknownToken: String?
    /// `add_bos_token` of tokenizer_config.json (and GGUF's `tokenizer.ggml.add_bos_token`).
    var addBOSToken = false
    /// Special tokens the post-processor puts before and after a single text (tokenizer.json's
    /// `TemplateProcessing`; a GGUF's `add_bos_token`): what Hugging Face's
    /// `add_special_tokens=True` and llama.cpp add around a prompt. `encode` adds neither.
    var prefixTokenIDs: [Int] = []
    var suffixTokenIDs: [Int] = []
    var chatTemplateJinja: String?
    var modelMaxLength: Int?
}

/// A byte-level BPE tokenizer compatible with Hugging Face `tokenizers` (GPT-2 family).
///
/// ```swift
/// let tokenizer = ByteLevelBPETokenizer.train(texts: corpus, vocabSize: 4096)
/// let ids = tokenizer.encode("Hello, world!<|endoftext|>")
/// assert(tokenizer.decode(ids) == "Hello, world!<|endoftext|>")
/// try tokenizer.save(to: modelDirectory)   // tokenizer.json + tokenizer_config.json
/// ```
///
/// Encoding is: split out added tokens → pre-tokenise (`PreTokenizer`) → BPE each pre-token
/// (`BPEModel`), with a cache of recent words. It is safe to call `encode`/`decode` from many
/// threads at once: the only mutable state they touch is a pool of per-call scratch buffers
/// and word caches, handed out under a lock, so concurrent calls never share a cache.
/// (`chatTemplate` and `modelMaxLength` are plain properties: set them before sharing.)
public final class ByteLevelBPETokenizer: @unchecked Sendable {
    public static let defaultSpecialTokens = ["<|endoftext|>", "<|pad|>", "<|im_start|>", "<|im_end|>"]

    let parts: TokenizerParts
    let model: BPEModel
    let preTokenizer: PreTokenizer
    /// Matches every added token, and only the non-special ones (for `allowSpecialTokens: false`).
    let allAddedTokens: AddedTokenMatcher
    let ordinaryAddedTokens: AddedTokenMatcher
    /// Bytes of every id, concatenated; token `i` is `tokenByteStore[tokenByteOffsets[i] ..< tokenByteOffsets[i+1]]`.
    let tokenByteStore: [UInt8]
    let tokenByteOffsets: [Int]
    let specialIDs: Set<Int>
    /// Added-token contents and model-vocabulary spellings → id.
    let tokenIndex: [String: Int]

    public var chatTemplate: ChatTemplate
    /// Written to tokenizer_config.json; nil writes Hugging Face's "unbounded" sentinel.
    public var modelMaxLength: Int?
    public let endOfTextID: Int
    public let padID: Int?
    public let vocabularySize: Int
    /// Contents of the special added tokens, in id order.
    public let specialTokens: [String]

    private let poolLock = NSLock()
    private var pool: [EncoderState] = []

    /// Per-call scratch space and word cache; see the class comment.
    final class EncoderState {
        var cache = ByteStringMap(minimumCapacity: 4096)
        let preTokenizer = PreTokenizer.Scratch()
        let bpe = BPEModel.Scratch()
        var word: [Int32] = []
        var prefixed: [UInt8] = []
    }

    /// Words longer than this are not cached: they rarely repeat and would crowd the arena.
    static let maxCachedWordBytes = 128
    /// The cache is emptied when it grows past this many words, bounding memory.
    static let maxCachedWords = 200_000

    /// The largest vocabulary a tokenizer file may declare (ids up to 2^24 − 1; the largest
    /// published vocabularies hold about 2^18). A bigger id is a corrupt file, refused before
    /// the per-id tables are allocated.
    public static let maxVocabularySize = 1 << 24

    init(parts: TokenizerParts, file: String) throws {
        self.parts = parts
        var size = 0
        for (spelling, id) in parts.modelVocab {
            guard id < Self.maxVocabularySize else {
                throw TokenizerError(file: file, "id \(id) of vocabulary entry \(spelling.debugDescription) exceeds the limit of \(Self.maxVocabularySize) tokens")
            }
            size = max(size, id + 1)
        }
        for token in parts.addedTokens {
            guard token.id < Self.maxVocabularySize else {
                throw TokenizerError(file: file, "id \(token.id) of added token \(token.content.debugDescription) exceeds the limit of \(Self.maxVocabularySize) tokens")
            }
            size = max(size, token.id + 1)
        }
        vocabularySize = size

        // Bytes of each id: added tokens are literal text, model tokens are byte-level spelled.
        var bytesByID = [[UInt8]](repeating: [], count: size)
        var index: [String: Int] = [:]
        index.reserveCapacity(size)
        for (spelling, id) in parts.modelVocab {
            guard id >= 0 else { throw TokenizerError(file: file, "negative id \(id) for vocabulary entry \(spelling.debugDescription)") }
            bytesByID[id] = ByteLevel.decode(spelling) ?? Array(spelling.utf8)
            index[spelling] = id
        }
        for token in parts.addedTokens {
            guard token.id >= 0 else { throw TokenizerError(file: file, "negative id \(token.id) for added token \(token.content.debugDescription)") }
            bytesByID[token.id] = Array(token.content.utf8)
            index[token.content] = token.id
        }
        tokenIndex = index
        var offsets = [0]
        offsets.reserveCapacity(size + 1)
        var store: [UInt8] = []
        for bytes in bytesByID {
            store.append(contentsOf: bytes)
            offsets.append(store.count)
        }
        tokenByteStore = store
        tokenByteOffsets = offsets

        // The model: initial byte tokens and the ranked merge table.
        var byteTokens = [Int32](repeating: -1, count: 256)
        for byte in 0..<256 {
            if let id = parts.modelVocab[String(ByteLevel.byteToScalar[byte])] { byteTokens[byte] = Int32(id) }
        }
        var merges = PairMap(minimumCapacity: parts.merges.count)
        for (rank, merge) in parts.merges.enumerated() {
            guard let left = parts.modelVocab[merge.left], let right = parts.modelVocab[merge.right] else {
                throw TokenizerError(file: file, "merge \(rank) (\(merge.left.debugDescription) \(merge.right.debugDescription)) uses a token that is not in the vocabulary")
            }
            guard let merged = parts.modelVocab[merge.left + merge.right] else {
                throw TokenizerError(file: file, "merge \(rank) produces \((merge.left + merge.right).debugDescription), which is not in the vocabulary")
            }
            // A repeated pair keeps its last rank, as in `tokenizers`.
            merges.set(PairMap.key(Int32(left), Int32(right)), UInt64(rank) << 32 | UInt64(merged))
        }
        var wholeWords: ByteStringMap?
        if parts.ignoreMerges {
            var map = ByteStringMap(minimumCapacity: parts.modelVocab.count)
            for (spelling, id) in parts.modelVocab {
                var bytes = ByteLevel.decode(spelling) ?? Array(spelling.utf8)
                if bytes.isEmpty { continue }
                bytes.withUnsafeMutableBufferPointer { b in
                    let h = hashBytes(b.baseAddress!, b.count)
                    if map.find(b.baseAddress!, b.count, hash: h) == nil {
                        var value = Int32(id)
                        _ = withUnsafePointer(to: &value) { map.insert(b.baseAddress!, b.count, hash: h, values: UnsafeBufferPointer(start: $0, count: 1)) }
                    }
                }
            }
            wholeWords = map
        }
        model = BPEModel(byteTokens: byteTokens, merges: merges, ignoreMerges: parts.ignoreMerges, wholeWords: wholeWords)
        preTokenizer = PreTokenizer(pattern: parts.pattern)
        allAddedTokens = AddedTokenMatcher(parts.addedTokens)
        ordinaryAddedTokens = AddedTokenMatcher(parts.addedTokens.filter { !$0.special })

        let specials = parts.addedTokens.filter(\.special).sorted { $0.id < $1.id }
        specialTokens = specials.map(\.content)
        specialIDs = Set(specials.map(\.id))

        // End of text: the configured eos, else <|endoftext|>, else the first special token.
        let eosCandidates = [parts.eosToken, "<|endoftext|>", specials.first?.content].compactMap { $0 }
        guard let eos = eosCandidates.lazy.compactMap({ index[$0] }).first else {
            throw TokenizerError(file: file, "no end-of-text token: tokenizer_config.json has no eos_token and there is no <|endoftext|> or other special token")
        }
        endOfTextID = eos
        if let pad = parts.padToken {
            padID = index[pad]
        } else {
            padID = index["<|pad|>"]
        }
        chatTemplate = .chatML
        if let jinja = parts.chatTemplateJinja { chatTemplate.jinja = jinja }
        modelMaxLength = parts.modelMaxLength
        for id in parts.prefixTokenIDs + parts.suffixTokenIDs where !(0..<size).contains(id) {
            throw TokenizerError(file: file, "post_processor adds token id \(id), which is not below the vocabulary size \(size)")
        }
    }

    /// The ids a model is given for `text` as a plain prompt: `encode(text)` between the special
    /// tokens the tokenizer's post-processor adds (Llama's beginning-of-text token, for one), as
    /// Hugging Face's `tokenizer(text)` and llama.cpp do. Chat prompts are rendered by the
    /// template, which writes its own special tokens, and use `encode`.
    public func encodeAsPrompt(_ text: String, allowSpecialTokens: Bool = true) -> [Int] {
        parts.prefixTokenIDs + encode(text, allowSpecialTokens: allowSpecialTokens) + parts.suffixTokenIDs
    }

    // MARK: - Vocabulary

    /// The id of an added token (by its text, e.g. "<|im_end|>") or of a vocabulary entry
    /// (by its tokenizer.json spelling, e.g. "Ġthe").
    public func tokenID(_ token: String) -> Int? { tokenIndex[token] }

    /// The id of `token` only if it is an added token (used where text must not be confused
    /// with a vocabulary spelling, such as the chat template markers).
    func addedTokenID(_ token: String) -> Int? {
        parts.addedTokens.first { $0.content == token }?.id
    }

    // MARK: - Encoding

    private func withEncoderState<R>(_ body: (EncoderState) -> R) -> R {
        poolLock.lock()
        let state = pool.popLast() ?? EncoderState()
        poolLock.unlock()
        defer {
            if state.cache.count > Self.maxCachedWords { state.cache.removeAll() }
            poolLock.lock()
            pool.append(state)
            poolLock.unlock()
        }
        return body(state)
    }

    /// Token ids of `text`. With `allowSpecialTokens` (the default) special tokens written in
    /// the text, such as "<|endoftext|>", become their ids; without it they are encoded as
    /// ordinary text — use that for untrusted input such as user messages.
    public func encode(_ text: String, allowSpecialTokens: Bool = true) -> [Int] {
        var text = parts.normalizeNFC ? text.precomposedStringWithCanonicalMapping : text
        var ids: [Int] = []
        let matcher = allowSpecialTokens ? allAddedTokens : ordinaryAddedTokens
        text.withUTF8 { utf8 in
            ids.reserveCapacity(utf8.count / 3 + 8)
            withEncoderState { state in
                var segmentStart = 0
                matcher.forEachMatch(in: utf8) { start, end, id in
                    encodeOrdinary(UnsafeBufferPointer(rebasing: utf8[segmentStart..<start]), state: state, into: &ids)
                    ids.append(id)
                    segmentStart = end
                }
                encodeOrdinary(UnsafeBufferPointer(rebasing: utf8[segmentStart...]), state: state, into: &ids)
            }
        }
        return ids
    }

    /// Pre-tokenises and BPE-encodes text that contains no added tokens.
    private func encodeOrdinary(_ text: UnsafeBufferPointer<UInt8>, state: EncoderState, into ids: inout [Int]) {
        if text.isEmpty { return }
        if parts.addPrefixSpace && text[0] != UInt8(ascii: " ") {
            // `tokenizers`' ByteLevel(add_prefix_space) prepends a space to each segment.
            state.prefixed.removeAll(keepingCapacity: true)
            state.prefixed.append(UInt8(ascii: " "))
            state.prefixed.append(contentsOf: text)
            let prefixed = state.prefixed
            prefixed.withUnsafeBufferPointer { encodeWords($0, state: state, into: &ids) }
        } else {
            encodeWords(text, state: state, into: &ids)
        }
    }

    private func encodeWords(_ text: UnsafeBufferPointer<UInt8>, state: EncoderState, into ids: inout [Int]) {
        let base = text.baseAddress!
        preTokenizer.split(text, scratch: state.preTokenizer) { start, end in
            let word = base + start
            let length = end - start
            let hash = hashBytes(word, length)
            if let entry = state.cache.find(word, length, hash: hash) {
                for id in state.cache.values(of: entry) { ids.append(Int(id)) }
                return
            }
            state.word.removeAll(keepingCapacity: true)
            model.encodeWord(UnsafeBufferPointer(start: word, count: length), scratch: state.bpe, into: &state.word)
            for id in state.word { ids.append(Int(id)) }
            if length <= Self.maxCachedWordBytes {
                _ = state.word.withUnsafeBufferPointer { state.cache.insert(word, length, hash: hash, values: $0) }
            }
        }
    }

    // MARK: - Decoding

    /// The bytes of a token sequence. Byte-level tokens can end in the middle of a UTF-8
    /// character, so bits-per-byte and streaming decoders work on bytes, not strings.
    /// Ids outside the vocabulary contribute nothing.
    public func decodeBytes(_ ids: [Int]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(ids.count * 4)
        tokenByteStore.withUnsafeBufferPointer { store in
            for id in ids where id >= 0 && id < vocabularySize {
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: store[tokenByteOffsets[id]..<tokenByteOffsets[id + 1]]))
            }
        }
        return bytes
    }

    /// The text of a token sequence; invalid UTF-8 (e.g. a cut-off character) becomes U+FFFD,
    /// as in `tokenizers`.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) -> String {
        let kept = skipSpecialTokens ? ids.filter { !specialIDs.contains($0) } : ids
        return String(decoding: decodeBytes(kept), as: UTF8.self)
    }

    /// Whether `id` is a special added token (e.g. to stop generation or skip in display).
    public func isSpecialToken(_ id: Int) -> Bool { specialIDs.contains(id) }

    /// How this tokenizer's ids differ from `other`'s (vocabulary, merges, added tokens,
    /// pre-tokenizer, end of text), or nil when both turn every text into the same ids. Models
    /// that exchange token ids (a PPO policy and its reward model) must agree.
    public func idDifference(from other: ByteLevelBPETokenizer) -> String? {
        if vocabularySize != other.vocabularySize { return "vocabulary sizes \(vocabularySize) and \(other.vocabularySize)" }
        if parts.pattern != other.parts.pattern || parts.addPrefixSpace != other.parts.addPrefixSpace
            || parts.normalizeNFC != other.parts.normalizeNFC || parts.ignoreMerges != other.parts.ignoreMerges {
            return "pre-tokenizer or normalizer settings"
        }
        if parts.addedTokens != other.parts.addedTokens { return "added (special) tokens \(specialTokens) and \(other.specialTokens)" }
        if endOfTextID != other.endOfTextID { return "end-of-text ids \(endOfTextID) and \(other.endOfTextID)" }
        if parts.prefixTokenIDs != other.parts.prefixTokenIDs || parts.suffixTokenIDs != other.parts.suffixTokenIDs {
            return "special tokens added around a prompt (\(parts.prefixTokenIDs)/\(parts.suffixTokenIDs) and \(other.parts.prefixTokenIDs)/\(other.parts.suffixTokenIDs))"
        }
        if parts.modelVocab != other.parts.modelVocab { return "vocabulary entries (same size \(vocabularySize), different tokens)" }
        if parts.merges.count != other.parts.merges.count
            || zip(parts.merges, other.parts.merges).contains(where: { $0.left != $1.left || $0.right != $1.right }) {
            return "merges"
        }
        return nil
    }
}
