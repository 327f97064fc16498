import Foundation
import LoomNN
import LoomTokenizer

/// Writes a Loom / Hugging Face model directory as a GGUF Llama file: `llama.*` metadata from
/// config.json, the tokenizer as `tokenizer.ggml.*`, and the weights under llama.cpp's names,
/// with the query and key rows interleaved as llama.cpp's converter does.
///
///     try GGUFExport.export(directory: modelDirectory, to: URL(fileURLWithPath: "model.gguf"), type: .q8_0)
///
/// Matrices are stored as `type`; vectors (the norms), and matrices whose rows are not a whole
/// number of blocks, stay F32 as llama.cpp keeps them.
public enum GGUFExport {
    /// llama.cpp's name of each Hugging Face weight.
    static func ggufName(_ name: String) -> String? {
        switch name {
        case "model.embed_tokens.weight": return "token_embd.weight"
        case "model.norm.weight": return "output_norm.weight"
        case "lm_head.weight": return "output.weight"
        default: break
        }
        let prefix = "model.layers."
        guard name.hasPrefix(prefix) else { return nil }
        let rest = name.dropFirst(prefix.count)
        guard let dot = rest.firstIndex(of: "."), let layer = Int(rest[..<dot]) else { return nil }
        let suffixes = [
            "input_layernorm.weight": "attn_norm.weight", "self_attn.q_proj.weight": "attn_q.weight",
            "self_attn.k_proj.weight": "attn_k.weight", "self_attn.v_proj.weight": "attn_v.weight",
            "self_attn.o_proj.weight": "attn_output.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
            "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
            "mlp.down_proj.weight": "ffn_down.weight",
        ]
        return suffixes[String(rest[rest.index(after: dot)...])].map { "blk.\(layer).\($0)" }
    }

    /// The GGUF file type code llama.cpp records in `general.file_type` for each export type.
    static func fileType(_ type: GGMLType) -> UInt32 {
        switch type {
        case .f32: 0
        case .f16: 1
        case .q4_0: 2
        case .q4_1: 3
        case .q8_0: 7
        default: 0
        }
    }

    public static func export(directory: URL, to url: URL, type: GGMLType) throws {
        guard GGUFQuants.exportTypes.contains(type) else {
            throw GGUFError(path: url.path, "cannot write tensors as \(type.name) (supported: \(GGUFQuants.exportTypes.map(\.name).joined(separator: ", ")))")
        }
        let model = try LlamaModel.load(directory: directory, heads: .languageModel)
        let tokenizer = try ByteLevelBPETokenizer(contentsOf: directory)
        let tensors = model.parameters.entries.map { entry -> Payload in
            let isMatrix = entry.shape.count == 2 && entry.shape[1] % type.blockSize == 0
            let stored: GGMLType = isMatrix ? type : .f32
            return Payload(name: entry.name, shape: entry.shape, type: stored,
                           bytes: GGUFQuants.quantize(stored, entry.tensor.data, count: entry.tensor.count))
        }
        try write(tensors, configuration: model.configuration, tokenizer: tokenizer, name: directory.lastPathComponent,
                  fileType: fileType(type), tokenizerPath: directory.appendingPathComponent("tokenizer.json").path, to: url)
    }

    /// One tensor to write: its Hugging Face name and shape, its GGUF type, and its bytes in
    /// Hugging Face row order.
    public struct Payload {
        public var name: String
        public var shape: [Int]
        public var type: GGMLType
        public var bytes: Data

        public init(name: String, shape: [Int], type: GGMLType, bytes: Data) {
            self.name = name
            self.shape = shape
            self.type = type
            self.bytes = bytes
        }

        /// A stored weight as it is: float32, or its quantized blocks.
        public init(name: String, weight: StoredWeight) {
            switch weight {
            case .dense(let tensor):
                self.init(name: name, shape: tensor.shape, type: .f32, bytes: GGUFQuants.quantize(.f32, tensor.data, count: tensor.count))
            case .quantized(let matrix):
                self.init(name: name, shape: matrix.shape, type: GGMLType(matrix.type), bytes: matrix.plainBytes())
            }
        }
    }

    /// Writes a GGUF Llama file: `llama.*` metadata from `configuration`, the tokenizer as
    /// `tokenizer.ggml.*`, and `tensors` under llama.cpp's names, the query and key rows
    /// interleaved as llama.cpp's converter does.
    public static func write(_ tensors: [Payload], configuration c: LlamaConfiguration, tokenizer: ByteLevelBPETokenizer,
                             name: String, fileType: UInt32, tokenizerPath: String, to url: URL) throws {
        let vocabulary = try tokenizer.ggufVocabulary(file: tokenizerPath)
        guard vocabulary.tokens.count <= c.vocabularySize else {
            throw GGUFError(path: tokenizerPath, "the tokenizer has \(vocabulary.tokens.count) tokens, more than vocab_size \(c.vocabularySize)")
        }
        var writer = GGUFWriter()
        var metadata: [(String, GGUFValue)] = [
            ("general.architecture", .string("llama")),
            ("general.name", .string(name)),
            ("general.file_type", .uint32(fileType)),
            ("general.quantization_version", .uint32(2)),
            ("llama.vocab_size", .uint32(UInt32(c.vocabularySize))),
            ("llama.context_length", .uint32(UInt32(c.maxPositionEmbeddings))),
            ("llama.embedding_length", .uint32(UInt32(c.hiddenSize))),
            ("llama.feed_forward_length", .uint32(UInt32(c.intermediateSize))),
            ("llama.block_count", .uint32(UInt32(c.layerCount))),
            ("llama.attention.head_count", .uint32(UInt32(c.headCount))),
            ("llama.attention.head_count_kv", .uint32(UInt32(c.kvHeadCount))),
            ("llama.rope.freq_base", .float32(Float(c.ropeTheta))),
            ("llama.rope.dimension_count", .uint32(UInt32(c.headDim))),
            ("llama.attention.layer_norm_rms_epsilon", .float32(c.rmsNormEps)),
            ("tokenizer.ggml.model", .string(vocabulary.model)),
            ("tokenizer.ggml.pre", .string(vocabulary.preTokenizer ?? PreTokenizerPattern.gpt2.llamaCppName)),
            ("tokenizer.ggml.tokens", .array(.string, vocabulary.tokens.map { .string($0) })),
            ("tokenizer.ggml.token_type", .array(.int32, (vocabulary.tokenTypes ?? []).map { .int32(Int32($0)) })),
            ("tokenizer.ggml.merges", .array(.string, vocabulary.merges.map { .string($0) })),
            ("tokenizer.ggml.add_bos_token", .bool(vocabulary.addBOSToken ?? false)),
        ]
        let ids: [(String, Int?)] = [("bos_token_id", vocabulary.bosID), ("eos_token_id", vocabulary.eosID),
                                     ("unknown_token_id", vocabulary.unknownID), ("padding_token_id", vocabulary.paddingID)]
        for (key, id) in ids { if let id { metadata.append(("tokenizer.ggml." + key, .uint32(UInt32(id)))) } }
        if let template = vocabulary.chatTemplate { metadata.append(("tokenizer.chat_template", .string(template))) }
        // RoPE scaling as llama.cpp reads it: linear as rope.scaling.*; Llama 3.1's as one factor
        // per rotary pair in rope_freqs.weight, by which llama.cpp divides the plain frequency.
        switch c.ropeScaling {
        case .linear(let factor)?:
            metadata += [("llama.rope.scaling.type", .string("linear")), ("llama.rope.scaling.factor", .float32(Float(factor)))]
        case .llama3(_, _, _, let original)?:
            metadata.append(("llama.rope.scaling.original_context_length", .uint32(UInt32(original))))
            let factors = GGUFLlama.ropeFactors(c)
            writer.addTensor(name: GGUFLlama.ropeFactorsTensor, dimensions: [factors.count], type: .f32,
                             bytes: factors.withUnsafeBufferPointer { Data(buffer: $0) })
        case nil:
            break
        }
        writer.metadata = metadata

        for tensor in tensors {
            guard let ggufName = ggufName(tensor.name) else {
                throw GGUFError(path: url.path, tensor: tensor.name, "has no llama.cpp name")
            }
            var bytes = tensor.bytes
            let rotaryHeads = tensor.name.hasSuffix("q_proj.weight") ? c.headCount
                : tensor.name.hasSuffix("k_proj.weight") ? c.kvHeadCount : nil
            if let heads = rotaryHeads {
                // GGUF row sources[r] holds Hugging Face row r.
                let rows = tensor.shape[0], rowBytes = bytes.count / rows
                let sources = GGUFLlama.huggingFaceRowSources(rows: rows, heads: heads)
                var permuted = Data(count: bytes.count)
                permuted.withUnsafeMutableBytes { out in
                    bytes.withUnsafeBytes { raw in
                        for (row, source) in sources.enumerated() {
                            (out.baseAddress! + source * rowBytes).copyMemory(from: raw.baseAddress! + row * rowBytes, byteCount: rowBytes)
                        }
                    }
                }
                bytes = permuted
            }
            writer.addTensor(name: ggufName, dimensions: tensor.shape.reversed(), type: tensor.type, bytes: bytes)
        }
        try writer.write(to: url)
    }
}
