import Foundation
import LoomSupport

/// The Hugging Face `LlamaConfig` fields Loom reads and writes. Coding keys are the
/// Hugging Face names, so `config.json` moves between Loom and `transformers` unchanged.
public struct LlamaConfiguration: Codable, Equatable, Sendable {
    public var vocabularySize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layerCount: Int
    public var headCount: Int
    public var kvHeadCount: Int
    public var maxPositionEmbeddings: Int
    public var rmsNormEps: Float
    public var ropeTheta: Double
    public var tieWordEmbeddings: Bool
    public var bosTokenID: Int?
    public var eosTokenID: Int?
    public var padTokenID: Int?
    /// End-of-sequence ids after the first, when `eos_token_id` is a list (Llama 3.1 Instruct:
    /// `[128001, 128008, 128009]`); generation stops at any of `endTokenIDs`.
    public var additionalEOSTokenIDs: [Int] = []
    /// The RoPE scaling the checkpoint was trained with; nil for plain RoPE.
    public var ropeScaling: RopeScaling?

    /// Every end-of-sequence id of `eos_token_id` (none, one, or the list).
    public var endTokenIDs: [Int] { (eosTokenID.map { [$0] } ?? []) + additionalEOSTokenIDs }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case vocabularySize = "vocab_size"
        case hiddenSize = "hidden_size"
        case intermediateSize = "intermediate_size"
        case layerCount = "num_hidden_layers"
        case headCount = "num_attention_heads"
        case kvHeadCount = "num_key_value_heads"
        case maxPositionEmbeddings = "max_position_embeddings"
        case rmsNormEps = "rms_norm_eps"
        case ropeTheta = "rope_theta"
        case tieWordEmbeddings = "tie_word_embeddings"
        case bosTokenID = "bos_token_id"
        case eosTokenID = "eos_token_id"
        case padTokenID = "pad_token_id"
        // Written for Hugging Face; read only to validate.
        case headDim = "head_dim"
        case hiddenAct = "hidden_act"
        case attentionBias = "attention_bias"
        case mlpBias = "mlp_bias"
        case modelType = "model_type"
        case architectures
        case torchDtype = "torch_dtype"
        case ropeScaling = "rope_scaling"
        case ropeParameters = "rope_parameters"
        case slidingWindow = "sliding_window"
    }

    /// The `model_type`s Loom runs: Llama, and Mistral when it has no sliding-window attention
    /// shorter than its context (then it is the same network under another name).
    public static let supportedModelTypes = ["llama", "mistral"]

    public init(vocabularySize: Int, hiddenSize: Int, intermediateSize: Int, layerCount: Int, headCount: Int,
                kvHeadCount: Int, maxPositionEmbeddings: Int, rmsNormEps: Float = 1e-5, ropeTheta: Double = 10000,
                tieWordEmbeddings: Bool = true, bosTokenID: Int? = nil, eosTokenID: Int? = nil, padTokenID: Int? = nil,
                ropeScaling: RopeScaling? = nil) {
        self.vocabularySize = vocabularySize; self.hiddenSize = hiddenSize; self.intermediateSize = intermediateSize
        self.layerCount = layerCount; self.headCount = headCount; self.kvHeadCount = kvHeadCount
        self.maxPositionEmbeddings = maxPositionEmbeddings; self.rmsNormEps = rmsNormEps; self.ropeTheta = ropeTheta
        self.tieWordEmbeddings = tieWordEmbeddings; self.bosTokenID = bosTokenID; self.eosTokenID = eosTokenID
        self.padTokenID = padTokenID; self.ropeScaling = ropeScaling
    }

    public var headDim: Int { hiddenSize / headCount }

    /// The `config.json` field names Loom reads (for unknown-key checks of configuration files).
    public static var fieldNames: [String] { CodingKeys.allCases.map(\.rawValue) }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        vocabularySize = try c.decode(Int.self, forKey: .vocabularySize)
        hiddenSize = try c.decode(Int.self, forKey: .hiddenSize)
        intermediateSize = try c.decode(Int.self, forKey: .intermediateSize)
        layerCount = try c.decode(Int.self, forKey: .layerCount)
        headCount = try c.decode(Int.self, forKey: .headCount)
        kvHeadCount = try c.decodeIfPresent(Int.self, forKey: .kvHeadCount) ?? headCount
        maxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? 2048
        rmsNormEps = try c.decodeIfPresent(Float.self, forKey: .rmsNormEps) ?? 1e-6
        if let type = try c.decodeIfPresent(String.self, forKey: .modelType), !Self.supportedModelTypes.contains(type) {
            throw ConfigurationError("model_type \"\(type)\" is not supported (Loom runs Llama-architecture models: model_type \(Self.supportedModelTypes.map { "\"\($0)\"" }.joined(separator: " or ")))")
        }
        if let window = try c.decodeIfPresent(Int.self, forKey: .slidingWindow), window < maxPositionEmbeddings {
            throw ConfigurationError("sliding_window \(window) is shorter than max_position_embeddings \(maxPositionEmbeddings): sliding-window attention is not supported (Loom attends over the whole context)")
        }
        // transformers 4 writes rope_theta and rope_scaling; transformers 5 writes both inside
        // rope_parameters (and still reads the older form).
        let scalingFields = try c.decodeIfPresent(RopeScaling.Fields.self, forKey: .ropeScaling)
        let parameterFields = try c.decodeIfPresent(RopeScaling.Fields.self, forKey: .ropeParameters)
        ropeTheta = try c.decodeIfPresent(Double.self, forKey: .ropeTheta) ?? parameterFields?.rope_theta ?? 10000
        if let fields = parameterFields, fields.kind != nil {
            ropeScaling = try RopeScaling.parse(fields, key: CodingKeys.ropeParameters.rawValue)
        } else if let fields = scalingFields {
            ropeScaling = try RopeScaling.parse(fields, key: CodingKeys.ropeScaling.rawValue)
        }
        tieWordEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings) ?? false
        bosTokenID = try? c.decodeIfPresent(Int.self, forKey: .bosTokenID)
        // eos_token_id is one id or a list of them; anything else is treated as absent, like
        // the other special-token fields (null, or a token string from old checkpoints).
        if let one = try? c.decodeIfPresent(Int.self, forKey: .eosTokenID) {
            eosTokenID = one
        } else if let list = try? c.decodeIfPresent([Int].self, forKey: .eosTokenID), let first = list.first {
            eosTokenID = first
            additionalEOSTokenIDs = Array(list.dropFirst().filter { $0 != first })
        }
        padTokenID = try? c.decodeIfPresent(Int.self, forKey: .padTokenID)
        if let act = try c.decodeIfPresent(String.self, forKey: .hiddenAct), act != "silu" {
            throw ConfigurationError("hidden_act \"\(act)\" is not supported (Loom implements silu / SwiGLU)")
        }
        if try c.decodeIfPresent(Bool.self, forKey: .attentionBias) == true || c.decodeIfPresent(Bool.self, forKey: .mlpBias) == true {
            throw ConfigurationError("attention_bias / mlp_bias are not supported")
        }
        if let headDim = try c.decodeIfPresent(Int.self, forKey: .headDim), headDim != hiddenSize / headCount {
            throw ConfigurationError("head_dim \(headDim) differs from hidden_size / num_attention_heads")
        }
        try validate()
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(["LlamaForCausalLM"], forKey: .architectures)
        try c.encode("llama", forKey: .modelType)
        try c.encode(vocabularySize, forKey: .vocabularySize)
        try c.encode(hiddenSize, forKey: .hiddenSize)
        try c.encode(intermediateSize, forKey: .intermediateSize)
        try c.encode(layerCount, forKey: .layerCount)
        try c.encode(headCount, forKey: .headCount)
        try c.encode(kvHeadCount, forKey: .kvHeadCount)
        try c.encode(headDim, forKey: .headDim)
        try c.encode(maxPositionEmbeddings, forKey: .maxPositionEmbeddings)
        try c.encode(rmsNormEps, forKey: .rmsNormEps)
        try c.encode(ropeTheta, forKey: .ropeTheta)
        try c.encode(tieWordEmbeddings, forKey: .tieWordEmbeddings)
        try c.encode("silu", forKey: .hiddenAct)
        try c.encode(false, forKey: .attentionBias)
        try c.encode(false, forKey: .mlpBias)
        try c.encode("float32", forKey: .torchDtype)
        try c.encodeIfPresent(ropeScaling?.fields, forKey: .ropeScaling)
        try c.encodeIfPresent(bosTokenID, forKey: .bosTokenID)
        if additionalEOSTokenIDs.isEmpty { try c.encodeIfPresent(eosTokenID, forKey: .eosTokenID) }
        else { try c.encode(endTokenIDs, forKey: .eosTokenID) }
        try c.encodeIfPresent(padTokenID, forKey: .padTokenID)
    }

    /// Upper bounds on the sizes a configuration may declare, each far above any model Loom can
    /// train or run, so that a corrupt or mistyped value (`vocab_size` 10^12) is an error that
    /// names the field instead of an allocation that fails or overflows.
    public enum Limits {
        public static let vocabularySize = 1 << 24
        public static let hiddenSize = 1 << 16
        public static let intermediateSize = 1 << 18
        public static let layerCount = 1 << 10
        public static let maxPositionEmbeddings = 1 << 20
        /// 2^36 parameters (256 GiB of float32).
        public static let parameterCount = 1 << 36
    }

    public func validate() throws {
        func check(_ ok: Bool, _ message: String) throws { if !ok { throw ConfigurationError(message) } }
        func bounded(_ value: Int, _ field: String, _ limit: Int) throws {
            try check(value > 0, "\(field) must be positive, got \(value)")
            try check(value <= limit, "\(field) \(value) exceeds Loom's limit of \(limit)")
        }
        try bounded(vocabularySize, "vocab_size", Limits.vocabularySize)
        try bounded(hiddenSize, "hidden_size", Limits.hiddenSize)
        try bounded(intermediateSize, "intermediate_size", Limits.intermediateSize)
        try bounded(layerCount, "num_hidden_layers", Limits.layerCount)
        try bounded(maxPositionEmbeddings, "max_position_embeddings", Limits.maxPositionEmbeddings)
        try bounded(headCount, "num_attention_heads", hiddenSize)
        try bounded(kvHeadCount, "num_key_value_heads", headCount)
        try check(rmsNormEps.isFinite && rmsNormEps > 0, "rms_norm_eps must be a positive number, got \(rmsNormEps)")
        try check(ropeTheta.isFinite && ropeTheta > 0, "rope_theta must be a positive number, got \(ropeTheta)")
        try ropeScaling?.validate()
        try check(hiddenSize > 0 && headCount > 0 && hiddenSize % headCount == 0,
                  "hidden_size (\(hiddenSize)) must be a positive multiple of num_attention_heads (\(headCount))")
        try check(kvHeadCount > 0 && headCount % kvHeadCount == 0,
                  "num_attention_heads (\(headCount)) must be a multiple of num_key_value_heads (\(kvHeadCount))")
        try check(headDim % 2 == 0, "head dimension \(headDim) must be even for rotary embeddings")
        let count = try parameterCount()
        try check(count <= Limits.parameterCount, "the configuration describes \(count) parameters, over Loom's limit of \(Limits.parameterCount)")
    }

    /// Every parameter of the model with a language-model head (embedding, layers, final
    /// norm, untied output), computed with overflow checks: a configuration whose sizes
    /// multiply past `Int.max` is an error, never a wrapped count.
    public func parameterCount() throws -> Int {
        func product(_ factors: Int...) throws -> Int {
            try factors.reduce(1) { total, factor in
                let (result, overflow) = total.multipliedReportingOverflow(by: factor)
                if overflow { throw ConfigurationError("the model sizes overflow: \(factors.map(String.init).joined(separator: " × ")) does not fit in 64 bits") }
                return result
            }
        }
        func sum(_ terms: Int...) throws -> Int {
            try terms.reduce(0) { total, term in
                let (result, overflow) = total.addingReportingOverflow(term)
                if overflow { throw ConfigurationError("the model sizes overflow: the parameter count does not fit in 64 bits") }
                return result
            }
        }
        let kvDim = try product(kvHeadCount, hiddenSize / max(headCount, 1))
        let perLayer = try sum(product(2, hiddenSize, hiddenSize), product(2, hiddenSize, kvDim),
                               product(3, hiddenSize, intermediateSize), product(2, hiddenSize))
        let embedding = try product(vocabularySize, hiddenSize)
        return try sum(product(layerCount, perLayer), embedding, tieWordEmbeddings ? 0 : embedding, hiddenSize)
    }

    /// Throws when the model's parameters, at `bytesPerParameter` bytes each (4 for float32
    /// weights; 16 to train: weights, gradients and two AdamW moments), would not fit in this
    /// machine's memory — said before anything is allocated.
    public func checkFitsInMemory(bytesPerParameter: Int = 4, purpose: String = "the weights") throws {
        let count = try parameterCount()
        let (bytes, overflow) = count.multipliedReportingOverflow(by: bytesPerParameter)
        let available = ProcessInfo.processInfo.physicalMemory
        guard !overflow, UInt64(bytes) <= available else {
            throw ConfigurationError("the model has \(count) parameters; \(purpose) need \(overflow ? "more than 2^63" : String(bytes)) bytes, more than this machine's \(available) bytes of memory")
        }
    }

    /// Reads `config.json`; errors name the file.
    public static func load(_ url: URL) throws -> LlamaConfiguration {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ConfigurationError("cannot read \(url.path): \(error.localizedDescription)")
        }
        do { return try JSONDecoder().decode(LlamaConfiguration.self, from: data) }
        catch let e as ConfigurationError { throw ConfigurationError("\(url.path): \(e.message)") }
        catch { throw ConfigurationError("\(url.path): \(describeDecodingError(error))") }
    }

    public func save(_ url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try encoder.encode(self), to: url)
    }

    /// Parameters that one token's forward pass multiplies with (for FLOP counts): every
    /// matrix except the embedding lookup; the output projection counts once even when tied.
    public var matmulParameterCount: Int {
        let kvDim = kvHeadCount * headDim
        let perLayer = hiddenSize * hiddenSize * 2 + hiddenSize * kvDim * 2 + 3 * hiddenSize * intermediateSize
        return layerCount * perLayer + vocabularySize * hiddenSize
    }
}

public struct ConfigurationError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Turns a `DecodingError` into "field `x.y`: what is wrong".
public func describeDecodingError(_ error: Error) -> String {
    func path(_ keys: [CodingKey]) -> String { keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".") }
    switch error {
    case DecodingError.keyNotFound(let key, let context):
        return "missing field \"\(path(context.codingPath + [key]))\""
    case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
        return "field \"\(path(context.codingPath))\": \(context.debugDescription)"
    case DecodingError.dataCorrupted(let context):
        return "invalid JSON\(context.codingPath.isEmpty ? "" : " at \"\(path(context.codingPath))\""): \(context.debugDescription) \((context.underlyingError as NSError?)?.userInfo["NSDebugDescription"] ?? "")"
    default:
        return "\(error)"
    }
}

/// Throws when `object` has a key outside `known`, naming the key, where it is, and the
/// known key it is most likely a misspelling of ("did you mean"): a mistyped setting
/// (`learning_rte`) must not silently leave the default in place.
public func rejectUnknownKeys(_ object: [String: Any], known: [String], in section: String) throws {
    for key in object.keys.sorted() where !known.contains(key) {
        var message = "unknown field \"\(section.isEmpty ? "" : section + ".")\(key)\""
        if let suggestion = closestName(to: key, among: known) { message += "; did you mean \"\(suggestion)\"?" }
        else { message += " (known: \(known.sorted().joined(separator: ", ")))" }
        throw ConfigurationError(message)
    }
}

/// The name in `names` nearest to `word` by edit distance, when it is near enough to be a
/// plausible misspelling (at most a third of the word's length, and at least 1, changed).
public func closestName(to word: String, among names: [String]) -> String? {
    let target = Array(word.lowercased())
    var best: (name: String, distance: Int)?
    for name in names {
        let d = editDistance(target, Array(name.lowercased()))
        if d < (best?.distance ?? Int.max) { best = (name, d) }
    }
    guard let best, best.distance <= max(1, target.count / 3) else { return nil }
    return best.name
}

/// Levenshtein distance (insertions, deletions and substitutions of characters).
func editDistance(_ a: [Character], _ b: [Character]) -> Int {
    if a.isEmpty { return b.count }
    var previous = Array(0...b.count)
    var current = previous
    for i in 1...a.count {
        current[0] = i
        for j in stride(from: 1, through: b.count, by: 1) {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        swap(&previous, &current)
    }
    return previous[b.count]
}
