import Foundation
import LoomSupport

/// LoRA adapters on disk in PEFT's format, so that the `peft` Python package loads them
/// (`PeftModel.from_pretrained(base, directory)`) and Loom loads PEFT's:
///
/// - `adapter_config.json`: `peft_type` LORA, `r`, `lora_alpha`, `lora_dropout`,
///   `target_modules`, `base_model_name_or_path`, `task_type` (CAUSAL_LM, or SEQ_CLS with
///   `modules_to_save` ["score"] for a reward model), and PEFT's defaults for the rest.
/// - `adapter_model.safetensors`: `base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight`
///   `[r, in]` and `….lora_B.weight` `[out, r]` per adapted layer (float32).
extension LoRAAdapters {
    public static let configFile = "adapter_config.json"
    public static let weightsFile = "adapter_model.safetensors"
    /// Metadata key of the base model's shape in `adapter_model.safetensors` (checked on load).
    static let baseShapeKey = "loom_base_shape"

    /// Whether `directory` holds an adapter (its `adapter_config.json`).
    public static func isAdapterDirectory(_ directory: URL) -> Bool {
        FileManager.default.fileExists(atPath: directory.appendingPathComponent(configFile).path)
    }

    /// Whether `directory` holds an adapter and no model weights of its own.
    public static func isAdapterOnlyDirectory(_ directory: URL) -> Bool {
        isAdapterDirectory(directory) && !["model.safetensors", LlamaModel.shardIndexFileName].contains {
            FileManager.default.fileExists(atPath: directory.appendingPathComponent($0).path)
        }
    }

    /// The model directory named by `base_model_name_or_path` (a path: absolute, or relative to
    /// the working directory or to the adapter directory); an error names the file when it is
    /// not a directory Loom can load.
    public static func baseDirectory(of adapterDirectory: URL) throws -> URL {
        let base = try loadSettings(adapterDirectory).baseModel
        let configURL = adapterDirectory.appendingPathComponent(configFile)
        guard !base.isEmpty else { throw ConfigurationError("\(configURL.path): base_model_name_or_path is empty; give the base model with --model and the adapter with --adapter") }
        let candidates = base.hasPrefix("/") ? [URL(fileURLWithPath: base)]
            : [URL(fileURLWithPath: base), adapterDirectory.appendingPathComponent(base)]
        for candidate in candidates where FileManager.default.fileExists(atPath: candidate.appendingPathComponent("config.json").path)
            || isAdapterDirectory(candidate) {
            return candidate.standardizedFileURL
        }
        throw ConfigurationError("\(configURL.path): base_model_name_or_path '\(base)' is not a model directory here; give the base model with --model and the adapter with --adapter")
    }

    /// The base model's dimensions, as recorded with an adapter and compared when it is applied.
    static func baseShape(_ c: LlamaConfiguration) -> String {
        "vocab_size=\(c.vocabularySize) hidden_size=\(c.hiddenSize) intermediate_size=\(c.intermediateSize) "
            + "num_hidden_layers=\(c.layerCount) num_attention_heads=\(c.headCount) num_key_value_heads=\(c.kvHeadCount)"
    }

    /// Writes `adapter_config.json` and `adapter_model.safetensors` into `directory` (each atomically).
    public func save(to directory: URL, metadata: [String: String] = [:]) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let alpha: Any = settings.alpha == settings.alpha.rounded() && abs(settings.alpha) < 1e9 ? Int(settings.alpha) : Double(settings.alpha)
        let config: [String: Any] = [
            "peft_type": "LORA",
            "task_type": scoreWeight == nil ? "CAUSAL_LM" : "SEQ_CLS",
            "base_model_name_or_path": baseModel,
            "r": settings.rank,
            "lora_alpha": alpha,
            "lora_dropout": Double(settings.dropout),
            "target_modules": settings.targets.map(\.rawValue),
            "modules_to_save": scoreWeight == nil ? NSNull() : ["score"] as Any,
            "bias": "none",
            "fan_in_fan_out": false,
            "inference_mode": true,
            "init_lora_weights": true,
            "use_rslora": false,
            "use_dora": false,
            "layers_to_transform": NSNull(),
            "layers_pattern": NSNull(),
            "rank_pattern": [String: Int](),
            "alpha_pattern": [String: Int](),
            "revision": NSNull(),
        ]
        let data = try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
        try AtomicFile.write(data, to: directory.appendingPathComponent(LoRAAdapters.configFile))
        var tags = ["format": "pt", LoRAAdapters.baseShapeKey: LoRAAdapters.baseShape(configuration)]
        tags.merge(metadata) { $1 }
        try SafeTensors.save(parameters.entries.map { (name: $0.name, tensor: $0.tensor) }, metadata: tags,
                             to: directory.appendingPathComponent(LoRAAdapters.weightsFile))
    }

    /// Reads the settings of `adapter_config.json`. Errors name the file and the field; PEFT
    /// options Loom does not implement (DoRA, rsLoRA, biases, per-layer patterns, regex targets)
    /// are refused rather than silently ignored.
    public static func loadSettings(_ directory: URL) throws -> (settings: LoRASettings, baseModel: String, modulesToSave: [String]) {
        let url = directory.appendingPathComponent(configFile)
        func fail(_ message: String) -> ConfigurationError { ConfigurationError("\(url.path): \(message)") }
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw fail("file not found (an adapter directory needs \(configFile) and \(weightsFile))")
        }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw fail("is not a JSON object")
        }
        let peftType = object["peft_type"] as? String
        guard peftType == "LORA" else { throw fail("peft_type is \(peftType.map { "'\($0)'" } ?? "missing"); Loom reads LORA adapters only") }
        guard let rank = (object["r"] as? NSNumber)?.intValue, (object["r"] as? NSNumber)?.doubleValue == Double(rank) else {
            throw fail("field r is missing or not an integer")
        }
        guard rank >= 1 else { throw fail("r must be at least 1, got \(rank)") }
        let alpha = (object["lora_alpha"] as? NSNumber)?.floatValue ?? 8
        guard alpha.isFinite && alpha > 0 else { throw fail("lora_alpha must be a positive number, got \(alpha)") }
        let dropout = (object["lora_dropout"] as? NSNumber)?.floatValue ?? 0
        guard dropout >= 0 && dropout < 1 else { throw fail("lora_dropout must be in [0, 1), got \(dropout)") }
        var targetNames: [String]
        if let list = object["target_modules"] as? [String] {
            targetNames = list
        } else if let single = object["target_modules"] as? String, LoRATarget(rawValue: single) != nil {
            targetNames = [single]
        } else {
            throw fail("target_modules must be a list of layer names (\(LoRATarget.allCases.map(\.rawValue).joined(separator: ", "))); got \(object["target_modules"].map { "\($0)" } ?? "nothing")")
        }
        var targets: [LoRATarget] = []
        for name in targetNames.sorted(by: { (LoRATarget(rawValue: $0).flatMap { LoRATarget.allCases.firstIndex(of: $0) } ?? 99) < (LoRATarget(rawValue: $1).flatMap { LoRATarget.allCases.firstIndex(of: $0) } ?? 99) }) {
            guard let target = LoRATarget(rawValue: name) else {
                throw fail("target_modules names '\(name)', which is not a Llama linear layer (\(LoRATarget.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            if !targets.contains(target) { targets.append(target) }
        }
        guard !targets.isEmpty else { throw fail("target_modules is empty") }
        func refuse(_ field: String, when condition: Bool, _ why: String) throws {
            if condition { throw fail("\(field) \(why); Loom does not implement it") }
        }
        try refuse("use_dora", when: object["use_dora"] as? Bool == true, "is true (DoRA)")
        try refuse("use_rslora", when: object["use_rslora"] as? Bool == true, "is true (rank-stabilised scaling)")
        try refuse("fan_in_fan_out", when: object["fan_in_fan_out"] as? Bool == true, "is true (transposed weights)")
        try refuse("bias", when: (object["bias"] as? String).map { $0 != "none" } ?? false, "is '\(object["bias"] as? String ?? "")' (trained biases)")
        try refuse("layers_to_transform", when: !(object["layers_to_transform"] == nil || object["layers_to_transform"] is NSNull), "is set (adapters on some layers only)")
        try refuse("rank_pattern", when: !((object["rank_pattern"] as? [String: Any])?.isEmpty ?? true), "is not empty (per-layer ranks)")
        try refuse("alpha_pattern", when: !((object["alpha_pattern"] as? [String: Any])?.isEmpty ?? true), "is not empty (per-layer alphas)")
        let modulesToSave = object["modules_to_save"] as? [String] ?? []
        if let other = modulesToSave.first(where: { $0 != "score" }) {
            throw fail("modules_to_save names '\(other)'; Loom trains and loads only the 'score' head beside the adapters")
        }
        let settings = LoRASettings(rank: rank, alpha: alpha, dropout: dropout, targets: targets)
        return (settings, object["base_model_name_or_path"] as? String ?? "", modulesToSave)
    }

    /// Loads the adapter in `directory` for `model`, checking everything against it first:
    /// the base model's dimensions, every tensor present with the shape the model and `r`
    /// imply, no tensor the model has no place for, finite values. Errors name the file and tensor.
    public static func load(_ directory: URL, for model: LlamaModel) throws -> LoRAAdapters {
        let (settings, baseModel, modulesToSave) = try loadSettings(directory)
        let configURL = directory.appendingPathComponent(configFile)
        let weightsURL = directory.appendingPathComponent(weightsFile)
        let c = model.configuration
        for target in settings.targets where settings.rank > target.weightShape(c).min()! {
            let shape = target.weightShape(c)
            throw ConfigurationError("\(configURL.path): r \(settings.rank) is larger than the model's \(target.rawValue) (\(shape[0])×\(shape[1])) allows: the adapter does not belong to this model")
        }
        let scoreHead = modulesToSave.contains("score")
        if scoreHead && model.scoreWeight == nil {
            throw ConfigurationError("\(configURL.path): the adapter carries a score head (modules_to_save [\"score\"]) but the model has none")
        }
        guard FileManager.default.fileExists(atPath: weightsURL.path) else {
            throw SafeTensorsError(path: weightsURL.path, "file not found (an adapter directory needs \(configFile) and \(weightsFile))")
        }
        if let recorded = try SafeTensors.header(weightsURL).metadata[baseShapeKey], recorded != baseShape(c) {
            throw SafeTensorsError(path: weightsURL.path, "the adapter was made for a base model with \(recorded), but the model has \(baseShape(c))")
        }
        let tensors = try SafeTensors.load(weightsURL)
        let adapters = LoRAAdapters(settings: settings, configuration: c, scoreHead: scoreHead, baseModel: baseModel)
        for entry in adapters.parameters.entries {
            guard let source = tensors[entry.name] else {
                throw SafeTensorsError(path: weightsURL.path, tensor: entry.name, "missing tensor (expected shape \(entry.shape) for r \(settings.rank))")
            }
            guard source.shape == entry.shape else {
                throw SafeTensorsError(path: weightsURL.path, tensor: entry.name,
                                       "has shape \(source.shape), but the model and r \(settings.rank) need \(entry.shape): the adapter does not fit this model")
            }
            if let bad = (0..<source.count).first(where: { !source.data[$0].isFinite }) {
                throw SafeTensorsError(path: weightsURL.path, tensor: entry.name, "holds \(source.data[bad]) at element \(bad)")
            }
            entry.tensor.data.update(from: source.data, count: source.count)
        }
        let known = Set(adapters.parameters.names)
        if let unknown = tensors.keys.sorted().first(where: { !known.contains($0) }) {
            throw SafeTensorsError(path: weightsURL.path, tensor: unknown,
                                   "is not an adapter tensor of this model (\(c.layerCount) layers, target_modules \(settings.targets.map(\.rawValue).joined(separator: ","))): the adapter was made for another base model or its adapter_config.json does not match it")
        }
        return adapters
    }
}

extension LlamaModel {
    /// Loads the PEFT adapter in `directory` and folds it into the weights (`loom merge`,
    /// `--adapter` of generate and chat): the model then computes base + adapter at the cost
    /// of the plain model.
    public func mergeAdapter(from directory: URL) throws {
        let previous = adapters
        attach(try LoRAAdapters.load(directory, for: self))
        mergeAdapters()
        if let previous { attach(previous) }
    }
}
