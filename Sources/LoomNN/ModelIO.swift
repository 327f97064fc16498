import Foundation
import LoomSupport

/// Reading and writing a model directory: `config.json` (Hugging Face Llama fields) and
/// `model.safetensors` (Hugging Face tensor names), the same files `transformers` reads.
extension LlamaModel {
    /// Tensors that Hugging Face checkpoints may carry but Loom recomputes.
    static let ignorableTensors: Set<String> = []

    /// Loads `config.json` and `model.safetensors` from `directory`.
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
        let quantizedURL = directory.appendingPathComponent(quantizedWeightsFileName)
        let hasSafeTensors = FileManager.default.fileExists(atPath: weightsURL.path)
        if FileManager.default.fileExists(atPath: quantizedURL.path) {
            guard !hasSafeTensors else {
                throw SafeTensorsError(path: directory.path, "holds both model.safetensors and \(quantizedWeightsFileName): keep one weights file per model directory")
            }
            return try loadQuantizedDirectory(directory, configuration: configuration, heads: requested, keepQuantized: keepQuantized)
        }
        guard hasSafeTensors else {
            throw SafeTensorsError(path: weightsURL.path, "file not found (a model directory needs config.json and model.safetensors, or \(quantizedWeightsFileName) for a quantized model)")
        }
        let tensors = try SafeTensors.load(weightsURL)
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
                throw SafeTensorsError(path: weightsURL.path, tensor: entry.name, "missing tensor (expected shape \(entry.shape))")
            }
            guard source.shape == entry.shape else {
                throw SafeTensorsError(path: weightsURL.path, tensor: entry.name,
                                       "has shape \(source.shape), config.json implies \(entry.shape)")
            }
            if let bad = firstNonFinite(source.data, count: source.count) {
                throw SafeTensorsError(path: weightsURL.path, tensor: entry.name,
                                       "holds \(source.data[bad]) at element \(bad): a model with non-finite weights cannot be used")
            }
            entry.tensor.data.update(from: source.data, count: source.count)
        }
        let known = Set(model.parameters.names).union(["lm_head.weight", "score.weight"])
        if let unknown = tensors.keys.sorted().first(where: { !known.contains($0) && !ignorableTensors.contains($0) }) {
            throw SafeTensorsError(path: weightsURL.path, tensor: unknown, "is not a Llama parameter Loom knows")
        }
        return model
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
