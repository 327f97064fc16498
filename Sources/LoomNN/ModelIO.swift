import Foundation
import LoomSupport

/// Reading and writing a model directory: `config.json` (Hugging Face Llama fields) and
/// `model.safetensors` (Hugging Face tensor names), the same files `transformers` reads.
extension LlamaModel {
    /// Tensors that Hugging Face checkpoints may carry but Loom recomputes.
    static let ignorableTensors: Set<String> = []

    /// Loads `config.json` and `model.safetensors` from `directory` (or, without that file, the
    /// shards that `model.safetensors.index.json` lists, as Hugging Face saves large checkpoints).
    ///
    /// `heads` chooses the heads to build; by default those the checkpoint has (a language
    /// model head when it has `lm_head.weight` or ties embeddings; the score head when it has
    /// `score.weight`). A head asked for but absent from the file starts from
    /// `initializeWeights`'s values (the score head: zero), so a reward model starts from
    /// an SFT checkpoint.
    ///
    /// A LoRA adapter directory (PEFT's `adapter_config.json` and `adapter_model.safetensors`,
    /// no `model.safetensors`: what a stage trained with `--lora-rank` writes) loads as its base
    /// model (`base_model_name_or_path`) with the adapter merged into the weights.
    /// A quantized model directory (`model.gguf` in place of `model.safetensors`) loads
    /// dequantized to float32, unless `keepQuantized`: then its Q8_0, Q4_0 and Q4_1 matrices
    /// stay in their blocks and the model is for inference only (`isQuantized`).
    public static func load(directory: URL, heads requested: Heads? = nil, keepQuantized: Bool = false) throws -> LlamaModel {
        if LoRAAdapters.isAdapterOnlyDirectory(directory) {
            let modulesToSave = try LoRAAdapters.loadSettings(directory).modulesToSave
            let model = try load(directory: try LoRAAdapters.baseDirectory(of: directory),
                                 heads: requested ?? (modulesToSave.contains("score") ? .score : nil))
            try model.mergeAdapter(from: directory)
            return model
        }
        let configuration = try LlamaConfiguration.load(directory.appendingPathComponent("config.json"))
        do { try configuration.checkFitsInMemory() }
        catch let error as ConfigurationError { throw ConfigurationError("\(directory.appendingPathComponent("config.json").path): \(error.message)") }
        let weightsURL = directory.appendingPathComponent("model.safetensors")
        let indexURL = directory.appendingPathComponent(shardIndexFileName)
        let quantizedURL = directory.appendingPathComponent(quantizedWeightsFileName)
        // One file wins over shards, as in transformers.
        let hasSafeTensors = FileManager.default.fileExists(atPath: weightsURL.path)
        let hasShards = !hasSafeTensors && FileManager.default.fileExists(atPath: indexURL.path)
        if FileManager.default.fileExists(atPath: quantizedURL.path) {
            guard !hasSafeTensors && !hasShards else {
                throw SafeTensorsError(path: directory.path, "holds both \(hasShards ? shardIndexFileName : "model.safetensors") and \(quantizedWeightsFileName): keep one set of weights per model directory")
            }
            return try loadQuantizedDirectory(directory, configuration: configuration, heads: requested, keepQuantized: keepQuantized)
        }
        guard hasSafeTensors || hasShards else {
            throw SafeTensorsError(path: weightsURL.path, "file not found (a model directory needs config.json and model.safetensors, or \(shardIndexFileName) and its shards, or \(quantizedWeightsFileName) for a quantized model)")
        }
        // Each tensor's file, for messages: the single file, or the shard that held it.
        var files: [String: String] = [:]
        let tensors = hasShards ? try loadShards(index: indexURL, files: &files) : try SafeTensors.load(weightsURL)
        func file(_ name: String) -> String { files[name] ?? (hasShards ? indexURL.path : weightsURL.path) }
        var heads: Heads = requested ?? []
        if requested == nil {
            if tensors["lm_head.weight"] != nil || configuration.tieWordEmbeddings { heads.insert(.languageModel) }
            if tensors["score.weight"] != nil { heads.insert(.score) }
            if heads.isEmpty { heads = .languageModel }
        }
        let model = LlamaModel(configuration: configuration, heads: heads)
        // Random values only matter for a head the file lacks; drawing them for every weight
        // that the file then overwrites took most of the load time (135 M parameters: seconds).
        if model.parameters.names.contains(where: { tensors[$0] == nil }) { model.initializeWeights(seed: 0) }
        for entry in model.parameters.entries {
            guard let source = tensors[entry.name] else {
                let optionalHead = (entry.name == "score.weight" || entry.name == "lm_head.weight") && requested != nil
                if optionalHead { continue }
                throw SafeTensorsError(path: file(entry.name), tensor: entry.name, "missing tensor (expected shape \(entry.shape))")
            }
            guard source.shape == entry.shape else {
                throw SafeTensorsError(path: file(entry.name), tensor: entry.name,
                                       "has shape \(source.shape), config.json implies \(entry.shape)")
            }
            if let bad = firstNonFinite(source.data, count: source.count) {
                throw SafeTensorsError(path: file(entry.name), tensor: entry.name,
                                       "holds \(source.data[bad]) at element \(bad): a model with non-finite weights cannot be used")
            }
            entry.tensor.data.update(from: source.data, count: source.count)
        }
        let known = Set(model.parameters.names).union(["lm_head.weight", "score.weight"])
        if let unknown = tensors.keys.sorted().first(where: { !known.contains($0) && !ignorableTensors.contains($0) }) {
            throw SafeTensorsError(path: file(unknown), tensor: unknown, "is not a Llama parameter Loom knows")
        }
        return model
    }

    /// The file that lists the shards of a checkpoint saved in several files (Hugging Face's
    /// layout above its shard size): `{"metadata": {…}, "weight_map": {tensor: shard file}}`.
    public static let shardIndexFileName = "model.safetensors.index.json"

    /// Every tensor of the shards `index` lists, each checked against the index: a shard must be
    /// a file beside the index, hold the tensors mapped to it, and no tensor the index places
    /// elsewhere or nowhere. `files` receives each tensor's shard path.
    static func loadShards(index: URL, files: inout [String: String]) throws -> [String: Tensor] {
        let data: Data
        do { data = try Data(contentsOf: index) } catch {
            throw SafeTensorsError(path: index.path, "cannot read the file: \(error.localizedDescription)")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data), let root = object as? [String: Any] else {
            throw SafeTensorsError(path: index.path, "is not a JSON object")
        }
        guard let map = root["weight_map"] as? [String: Any], !map.isEmpty else {
            throw SafeTensorsError(path: index.path, "has no \"weight_map\" object of tensor names to shard files")
        }
        var shardOf: [String: String] = [:]
        for (name, value) in map {
            guard let shard = value as? String else {
                throw SafeTensorsError(path: index.path, tensor: name, "weight_map value is not a file name")
            }
            guard !shard.isEmpty, shard != ".", shard != "..", !shard.contains("/"), !shard.contains("\0") else {
                throw SafeTensorsError(path: index.path, tensor: name, "weight_map names \"\(shard)\", which is not a file name in the model directory")
            }
            shardOf[name] = shard
        }
        let shards = Set(shardOf.values).sorted()
        // Every shard is there before any is read.
        for shard in shards {
            let url = index.deletingLastPathComponent().appendingPathComponent(shard)
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw SafeTensorsError(path: url.path, "file not found (listed in \(index.lastPathComponent))")
            }
        }
        var tensors: [String: Tensor] = [:]
        for shard in shards {
            let url = index.deletingLastPathComponent().appendingPathComponent(shard)
            for (name, tensor) in try SafeTensors.load(url) {
                guard shardOf[name] == shard else {
                    throw SafeTensorsError(path: url.path, tensor: name, shardOf[name].map { "is in this shard, but \(index.lastPathComponent) places it in \($0)" }
                                           ?? "is in this shard but not in \(index.lastPathComponent)'s weight_map")
                }
                tensors[name] = tensor
                files[name] = url.path
            }
        }
        if let (name, shard) = shardOf.sorted(by: { $0.key < $1.key }).first(where: { tensors[$0.key] == nil }) {
            throw SafeTensorsError(path: index.deletingLastPathComponent().appendingPathComponent(shard).path, tensor: name,
                                   "is missing: \(index.lastPathComponent) places it in this shard")
        }
        return tensors
    }

    /// The index of the first NaN or infinity among `count` values, or nil.
    static func firstNonFinite(_ values: UnsafePointer<Float>, count: Int) -> Int? {
        // Any NaN or infinity makes the sum of |x| · 0 NaN: one vectorisable pass in the
        // common, all-finite case; the element is located only when there is one.
        var probe: Float = 0
        for i in 0..<count { probe += values[i] * 0 }
        if probe == 0 { return nil }
        return (0..<count).first { !values[$0].isFinite }
    }

    /// Writes `config.json` and `model.safetensors` (float32) into `directory`, each atomically.
    public func save(directory: URL, metadata: [String: String] = [:]) throws {
        guard !isQuantized else {
            throw SafeTensorsError(path: directory.path, "this model holds quantized weights; write quantized models with `loom quantize` (model.gguf), or load the directory dequantized to save it as float32")
        }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var configObject = try JSONSerialization.jsonObject(with: JSONEncoder().encode(configuration)) as! [String: Any]
        if heads.contains(.score) && !heads.contains(.languageModel) {
            configObject["architectures"] = ["LlamaForSequenceClassification"]
            configObject["num_labels"] = 1
            configObject["id2label"] = ["0": "LABEL_0"]
            configObject["label2id"] = ["LABEL_0": 0]
        }
        let configData = try JSONSerialization.data(withJSONObject: configObject, options: [.prettyPrinted, .sortedKeys])
        try AtomicFile.write(configData, to: directory.appendingPathComponent("config.json"))
        let tensors = parameters.entries.map { (name: $0.name, tensor: $0.tensor) }
        try SafeTensors.save(tensors, metadata: ["format": "pt"].merging(metadata) { $1 },
                             to: directory.appendingPathComponent("model.safetensors"))
    }

    /// A new model with the same configuration, heads and weights (a frozen reference).
    public func copy(requiresGrad: Bool = true) -> LlamaModel {
        let clone = LlamaModel(configuration: configuration, heads: heads, quantized: quantizedWeights)
        clone.parameters.copyValues(from: parameters)
        clone.parameters.setRequiresGrad(requiresGrad)
        return clone
    }
}
