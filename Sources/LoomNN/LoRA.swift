import Foundation

/// The linear layers of a Llama block that LoRA can adapt, by their Hugging Face / PEFT names.
public enum LoRATarget: String, CaseIterable, Codable, Sendable {
    case q = "q_proj", k = "k_proj", v = "v_proj", o = "o_proj"
    case gate = "gate_proj", up = "up_proj", down = "down_proj"

    /// The module path inside a decoder layer (`self_attn.q_proj`, `mlp.gate_proj`).
    public var modulePath: String {
        switch self {
        case .q, .k, .v, .o: return "self_attn." + rawValue
        case .gate, .up, .down: return "mlp." + rawValue
        }
    }

    /// `[out, in]` of the adapted weight.
    public func weightShape(_ c: LlamaConfiguration) -> [Int] {
        let h = c.hiddenSize, kv = c.kvHeadCount * c.headDim, m = c.intermediateSize
        switch self {
        case .q, .o: return [h, h]
        case .k, .v: return [kv, h]
        case .gate, .up: return [m, h]
        case .down: return [h, m]
        }
    }
}

/// Low-rank adaptation settings (`--lora-rank`, `--lora-alpha`, `--lora-dropout`,
/// `--lora-targets`): each targeted weight W becomes W + (alpha / rank) · B · A, with A
/// `[rank, in]` and B `[out, rank]` trained and W frozen.
public struct LoRASettings: Codable, Equatable, Sendable {
    public var rank: Int
    public var alpha: Float
    /// Dropout on the adapter's input while training (PEFT's `lora_dropout`).
    public var dropout: Float
    public var targets: [LoRATarget]

    /// `alpha` defaults to twice the rank (a scale of 2); targets to every linear layer of a block.
    public init(rank: Int, alpha: Float? = nil, dropout: Float = 0, targets: [LoRATarget] = LoRATarget.allCases) {
        self.rank = rank
        self.alpha = alpha ?? Float(2 * rank)
        self.dropout = dropout
        self.targets = targets
    }

    /// The factor on B·A.
    public var scale: Float { alpha / Float(rank) }

    /// Parses `--lora-targets q_proj,v_proj` (also `all`); an unknown name is an error naming the flag.
    public static func parseTargets(_ text: String) throws -> [LoRATarget] {
        let names = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !names.isEmpty else { throw ConfigurationError("--lora-targets is empty; name at least one of \(LoRATarget.allCases.map(\.rawValue).joined(separator: ","))") }
        if names == ["all"] { return LoRATarget.allCases }
        var targets: [LoRATarget] = []
        for name in names {
            guard let target = LoRATarget(rawValue: name) else {
                throw ConfigurationError("--lora-targets: unknown target '\(name)'; the targets are \(LoRATarget.allCases.map(\.rawValue).joined(separator: ","))")
            }
            if !targets.contains(target) { targets.append(target) }
        }
        return targets
    }

    /// Throws unless the settings fit `configuration`: rank at least 1 and at most the smaller
    /// side of every targeted weight, a finite alpha, dropout in [0, 1). Messages name the flag.
    public func validate(for configuration: LlamaConfiguration) throws {
        guard rank >= 1 else { throw ConfigurationError("--lora-rank must be at least 1, got \(rank)") }
        guard !targets.isEmpty else { throw ConfigurationError("--lora-targets is empty") }
        for target in targets {
            let shape = target.weightShape(configuration)
            guard rank <= shape.min()! else {
                throw ConfigurationError("--lora-rank \(rank) is larger than the \(target.rawValue) layer allows (its weight is \(shape[0])×\(shape[1]); the rank can be at most \(shape.min()!))")
            }
        }
        guard alpha.isFinite && alpha > 0 else { throw ConfigurationError("--lora-alpha must be a positive number, got \(alpha)") }
        guard dropout >= 0 && dropout < 1 else { throw ConfigurationError("--lora-dropout must be in [0, 1), got \(dropout)") }
    }
}

/// The LoRA adapters of one Llama model: an A and a B matrix for each targeted linear layer of
/// each block, in their own `ParameterStore` under PEFT's tensor names (so that the optimizer,
/// gradient clipping and checkpoints see only them), and, for a model with a score head, a
/// trainable copy of that head (PEFT's `modules_to_save` for sequence classification).
///
///     let adapters = LoRAAdapters(settings: LoRASettings(rank: 8), model: model, seed: 1)
///     model.attach(adapters)        // forward passes now add (alpha/r)·B·A·x
public final class LoRAAdapters {
    public let settings: LoRASettings
    public let configuration: LlamaConfiguration
    public let parameters: ParameterStore
    /// `base_model_name_or_path` of `adapter_config.json`: the directory of the base model.
    public var baseModel: String
    /// The trainable score head (`base_model.model.score.weight`) when the model has one.
    public let scoreWeight: Tensor?
    /// Draws dropout masks while gradients are recorded; the trainer reseeds it every step.
    public var dropoutRandom = SeededRandom(seed: 0)
    /// `pairs[layer][target]`: the A `[rank, in]` and B `[out, rank]` of one adapted weight.
    let pairs: [[LoRATarget: (a: Tensor, b: Tensor)]]

    /// PEFT's tensor name of one adapter matrix (`matrix` is `lora_A` or `lora_B`).
    public static func tensorName(layer: Int, target: LoRATarget, matrix: String) -> String {
        "base_model.model.model.layers.\(layer).\(target.modulePath).\(matrix).weight"
    }
    public static let scoreTensorName = "base_model.model.score.weight"

    /// Names and shapes, in storage order.
    public static func layout(settings: LoRASettings, configuration c: LlamaConfiguration, scoreHead: Bool) -> [(name: String, shape: [Int])] {
        var layout: [(name: String, shape: [Int])] = []
        for layer in 0..<c.layerCount {
            for target in LoRATarget.allCases where settings.targets.contains(target) {
                let shape = target.weightShape(c)
                layout.append((tensorName(layer: layer, target: target, matrix: "lora_A"), [settings.rank, shape[1]]))
                layout.append((tensorName(layer: layer, target: target, matrix: "lora_B"), [shape[0], settings.rank]))
            }
        }
        if scoreHead { layout.append((scoreTensorName, [1, c.hiddenSize])) }
        return layout
    }

    /// Adapters for `model`, initialised as PEFT does (`init_lora_weights=True`): A from
    /// Kaiming-uniform with a = √5, which is U(−1/√in, 1/√in), and B zero, so the adapted
    /// model starts equal to the base. A score head starts as the model's own.
    public init(settings: LoRASettings, configuration: LlamaConfiguration, scoreHead: Bool = false, baseModel: String = "") {
        self.settings = settings
        self.configuration = configuration
        self.baseModel = baseModel
        parameters = ParameterStore(LoRAAdapters.layout(settings: settings, configuration: configuration, scoreHead: scoreHead))
        let p = parameters
        pairs = (0..<configuration.layerCount).map { layer in
            var byTarget: [LoRATarget: (a: Tensor, b: Tensor)] = [:]
            for target in settings.targets {
                byTarget[target] = (p[LoRAAdapters.tensorName(layer: layer, target: target, matrix: "lora_A")],
                                    p[LoRAAdapters.tensorName(layer: layer, target: target, matrix: "lora_B")])
            }
            return byTarget
        }
        scoreWeight = scoreHead ? p[LoRAAdapters.scoreTensorName] : nil
    }

    /// Adapters for `model` with PEFT's initialisation drawn from `seed`.
    public convenience init(settings: LoRASettings, model: LlamaModel, seed: UInt64, baseModel: String = "") {
        self.init(settings: settings, configuration: model.configuration, scoreHead: model.scoreWeight != nil, baseModel: baseModel)
        initialize(seed: seed)
        if let scoreWeight, let base = model.scoreWeight { scoreWeight.data.update(from: base.data, count: base.count) }
    }

    /// A ~ U(−1/√in, 1/√in), B = 0.
    public func initialize(seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        for layerPairs in pairs {
            for target in LoRATarget.allCases {
                guard let (a, b) = layerPairs[target] else { continue }
                let bound = 1 / Float(a.shape[1]).squareRoot()
                for i in 0..<a.count { a.data[i] = (2 * rng.nextUniform() - 1) * bound }
                b.storage.zero()
            }
        }
    }

    /// The A and B of one layer's target, if it is adapted.
    public func pair(layer: Int, target: LoRATarget) -> (a: Tensor, b: Tensor)? { pairs[layer][target] }

    /// A dropout mask shaped like `x` (0, or 1/(1 − p) to keep the expectation, as PyTorch), drawn
    /// only while a tape records (training); nil without dropout or outside training.
    func dropoutMask(like x: Tensor) -> Tensor? {
        guard settings.dropout > 0 && Tape.current != nil else { return nil }
        let keep = 1 - settings.dropout, kept = 1 / keep
        let mask = Tensor(uninitialized: x.shape)
        for i in 0..<mask.count { mask.data[i] = dropoutRandom.nextUniform() < keep ? kept : 0 }
        return mask
    }

    /// (alpha/r) · dropout(x) · Aᵀ · Bᵀ: what an adapter adds to a targeted layer's output,
    /// composed from plain ops (the reference the fused `loraLinear` is tested against).
    public func delta(_ x: Tensor, layer: Int, target: LoRATarget) -> Tensor? {
        guard let (a, b) = pairs[layer][target] else { return nil }
        let input = dropoutMask(like: x).map { x * $0 } ?? x
        return linear(linear(input, a), b) * settings.scale
    }

    /// x·Wᵀ plus the adapter's term, as one op (`loraLinear`); nil when the layer is not adapted.
    public func adaptedLinear(_ x: Tensor, weight: Tensor, layer: Int, target: LoRATarget) -> Tensor? {
        guard let (a, b) = pairs[layer][target] else { return nil }
        return loraLinear(x, weight: weight, a: a, b: b, scale: settings.scale, dropoutMask: dropoutMask(like: x))
    }

    /// W + (alpha/r)·B·A for one adapted weight, into `weight` (no gradients are recorded).
    func merge(into weight: Tensor, layer: Int, target: LoRATarget) {
        guard let (a, b) = pairs[layer][target] else { return }
        let product = withoutGradients { matmul(b.detached(), a.detached()) }
        let s = settings.scale
        for i in 0..<weight.count { weight.data[i] += s * product.data[i] }
    }
}

extension LlamaModel {
    /// The layer's output `x · Wᵀ`, plus the adapter's low-rank term when adapters are attached
    /// and enabled.
    func project(_ x: Tensor, _ weight: Tensor, layer: Int, target: LoRATarget) -> Tensor {
        if adaptersEnabled, let adapters, let adapted = adapters.adaptedLinear(x, weight: weight, layer: layer, target: target) {
            return adapted
        }
        return linear(x, weight)
    }

    /// The score head in use: the adapters' trainable copy while they are enabled, else the model's.
    var activeScoreWeight: Tensor? {
        if adaptersEnabled, let adapted = adapters?.scoreWeight { return adapted }
        return scoreWeight
    }

    /// Folds the attached adapters into the weights (W ← W + (alpha/r)·B·A; the score head
    /// replaced by the adapters' copy) and detaches them: the model then computes what it
    /// computed with the adapters, at the cost of the plain model.
    public func mergeAdapters() {
        guard let adapters else { return }
        for layer in 0..<configuration.layerCount {
            for target in adapters.settings.targets {
                let name = "model.layers.\(layer).\(target.modulePath).weight"
                adapters.merge(into: parameters[name], layer: layer, target: target)
            }
        }
        if let adapted = adapters.scoreWeight, let score = scoreWeight {
            score.data.update(from: adapted.data, count: adapted.count)
        }
        detachAdapters()
    }
}

extension LlamaModel {
    /// Runs `body` with the adapters folded into the weights (and switched off, so they are
    /// not added twice), then puts the exact base weights back: code that reads the weights
    /// directly (the KV-cache decoding of generation) then sees the adapted model, and the
    /// frozen base stays bit-identical. Costs a temporary copy of the adapted weights.
    public func withAdaptersMerged<T>(_ body: () throws -> T) rethrows -> T {
        guard let adapters, adaptersEnabled else { return try body() }
        var saved: [(tensor: Tensor, values: [Float])] = []
        for layer in 0..<configuration.layerCount {
            for target in adapters.settings.targets {
                let weight = parameters["model.layers.\(layer).\(target.modulePath).weight"]
                saved.append((weight, weight.scalars))
                adapters.merge(into: weight, layer: layer, target: target)
            }
        }
        if let adapted = adapters.scoreWeight, let score = scoreWeight {
            saved.append((score, score.scalars))
            score.data.update(from: adapted.data, count: adapted.count)
        }
        adaptersEnabled = false
        defer {
            adaptersEnabled = true
            for (tensor, values) in saved {
                values.withUnsafeBufferPointer { tensor.data.update(from: $0.baseAddress!, count: values.count) }
            }
        }
        return try body()
    }
}
