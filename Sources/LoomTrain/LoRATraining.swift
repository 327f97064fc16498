import Foundation

/// With `settings.lora`, attaches new LoRA adapters to `model` (PEFT's initialisation, seeded
/// by the run's seed), freezes the model's own weights (no gradients, no optimizer state) and
/// returns the adapters' parameters as what the stage trains; without it, the model's parameters.
/// `baseModel` (the stage's model directory) becomes `base_model_name_or_path` of the adapter.
func attachLoRAIfRequested(_ settings: StageSettings, to model: LlamaModel, baseModel: URL?) throws -> ParameterStore {
    guard let lora = settings.lora else { return model.parameters }
    try lora.validate(for: model.configuration)
    let adapters = LoRAAdapters(settings: lora, model: model, seed: settings.seed &+ 0x10A,
                                baseModel: baseModel?.standardizedFileURL.path ?? "")
    model.attach(adapters)
    model.parameters.freeze()
    let trained = adapters.parameters.count
    logLine("LoRA: rank \(lora.rank), alpha \(lora.alpha), dropout \(lora.dropout) on \(lora.targets.map(\.rawValue).joined(separator: ",")): "
            + "\(trained) trainable parameters (\(String(format: "%.2f", 100 * Double(trained) / Double(model.parameters.count)))% of \(model.parameters.count)), base frozen")
    return adapters.parameters
}

/// The reference model of DPO, PPO and GRPO: with LoRA the frozen base itself, through a second
/// model object over the same weights (no copy); without, a frozen copy of the weights.
func frozenReference(of model: LlamaModel, settings: StageSettings) -> LlamaModel {
    settings.lora != nil ? model.sharingBaseWeights() : model.copy(requiresGrad: false)
}
