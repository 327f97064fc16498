import Foundation

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

    enum CodingKeys: String, CodingKey {
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
    }

    public init(vocabularySize: Int, hiddenSize: Int, intermediateSize: Int, layerCount: Int, headCount: Int,
                kvHeadCount: Int, maxPositionEmbeddings: Int, rmsNormEps: Float = 1e-5, ropeTheta: Double = 10000,
                tieWordEmbeddings: Bool = true, bosTokenID: Int? = nil, eosTokenID: Int? = nil, padTokenID: Int? = nil) {
        self.vocabularySize = vocabularySize; self.hiddenSize = hiddenSize; self.intermediateSize = intermediateSize
        self.layerCount = layerCount; self.headCount = headCount; self.kvHeadCount = kvHeadCount
        self.maxPositionEmbeddings = maxPositionEmbeddings; self.rmsNormEps = rmsNormEps; self.ropeTheta = ropeTheta
        self.tieWordEmbeddings = tieWordEmbeddings; self.bosTokenID = bosTokenID; self.eosTokenID = eosTokenID
        self.padTokenID = padTokenID
    }

    public var headDim: Int { hiddenSize / headCount }

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
        // transformers 5 moved rope_theta into rope_parameters.
        struct RopeParameters: Decodable { var rope_theta: Double?; var rope_type: String? }
        let ropeParameters = try? c.decodeIfPresent(RopeParameters.self, forKey: .ropeParameters)
        ropeTheta = try c.decodeIfPresent(Double.self, forKey: .ropeTheta) ?? ropeParameters?.rope_theta ?? 10000
        tieWordEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings) ?? false
        bosTokenID = try? c.decodeIfPresent(Int.self, forKey: .bosTokenID)
        eosTokenID = try? c.decodeIfPresent(Int.self, forKey: .eosTokenID)
        padTokenID = try? c.decodeIfPresent(Int.self, forKey: .padTokenID)
        if let act = try c.decodeIfPresent(String.self, forKey: .hiddenAct), act != "silu" {
            throw ConfigurationError("hidden_act \"\(act)\" is not supported (Loom implements silu / SwiGLU)")
        }
        if try c.decodeIfPresent(Bool.self, forKey: .attentionBias) == true || c.decodeIfPresent(Bool.self, forKey: .mlpBias) == true {
            throw ConfigurationError("attention_bias / mlp_bias are not supported")
        }
        if let type = ropeParameters?.rope_type, type != "default" {
            throw ConfigurationError("rope_parameters.rope_type \"\(type)\" is not supported (only default RoPE)")
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
        try c.encodeIfPresent(bosTokenID, forKey: .bosTokenID)
        try c.encodeIfPresent(eosTokenID, forKey: .eosTokenID)
        try c.encodeIfPresent(padTokenID, forKey: .padTokenID)
    }

    public func validate() throws {
        func check(_ ok: Bool, _ message: String) throws { if !ok { throw ConfigurationError(message) } }
        try check(vocabularySize > 0, "vocab_size must be positive")
        try check(hiddenSize > 0 && headCount > 0 && hiddenSize % headCount == 0,
                  "hidden_size (\(hiddenSize)) must be a positive multiple of num_attention_heads (\(headCount))")
        try check(kvHeadCount > 0 && headCount % kvHeadCount == 0,
                  "num_attention_heads (\(headCount)) must be a multiple of num_key_value_heads (\(kvHeadCount))")
        try check(headDim % 2 == 0, "head dimension \(headDim) must be even for rotary embeddings")
        try check(layerCount > 0 && intermediateSize > 0 && maxPositionEmbeddings > 0,
                  "num_hidden_layers, intermediate_size and max_position_embeddings must be positive")
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
        try writeAtomically(try encoder.encode(self), to: url)
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

/// Writes to a temporary file in the same folder, then renames it over `url`, so a reader
/// (or a crash) never sees a half-written file.
public func writeAtomically(_ data: Data, to url: URL) throws {
    let directory = url.deletingLastPathComponent()
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    let temporary = directory.appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
    try data.write(to: temporary)
    if rename(temporary.path, url.path) != 0 {
        let reason = String(cString: strerror(errno))
        try? FileManager.default.removeItem(at: temporary)
        throw ConfigurationError("cannot move \(temporary.path) to \(url.path): \(reason)")
    }
}
