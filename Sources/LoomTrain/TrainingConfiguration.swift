import Foundation

/// A run configuration file (`configs/tiny.json`): the model's Hugging Face fields under
/// `"model"`, and the optimisation settings under `"train"`.
public struct TrainingConfiguration: Codable, Equatable, Sendable {
    public var model: LlamaConfiguration
    public var train: TrainSettings

    public init(model: LlamaConfiguration, train: TrainSettings) {
        self.model = model; self.train = train
    }

    public static func load(_ url: URL) throws -> TrainingConfiguration {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ConfigurationError("cannot read configuration \(url.path): \(error.localizedDescription)")
        }
        let config: TrainingConfiguration
        do {
            try rejectUnknownFields(in: data)
            config = try JSONDecoder().decode(TrainingConfiguration.self, from: data)
        }
        catch let e as ConfigurationError { throw ConfigurationError("\(url.path): \(e.message)") }
        catch { throw ConfigurationError("\(url.path): \(describeDecodingError(error))") }
        do { try config.train.validate(model: config.model) }
        catch let e as ConfigurationError { throw ConfigurationError("\(url.path): \(e.message)") }
        return config
    }

    /// Every key of the file must be one Loom reads: `model` and `train` at the top, the
    /// `config.json` fields under `model`, the `TrainSettings` fields under `train`.
    static func rejectUnknownFields(in data: Data) throws {
        // Malformed JSON is left to the decoder, whose message says where.
        guard let top = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return }
        try rejectUnknownKeys(top, known: ["model", "train"], in: "")
        if let model = top["model"] as? [String: Any] { try rejectUnknownKeys(model, known: LlamaConfiguration.fieldNames, in: "model") }
        if let train = top["train"] as? [String: Any] { try rejectUnknownKeys(train, known: TrainSettings.fieldNames, in: "train") }
    }
}

public struct TrainSettings: Codable, Equatable, Sendable {
    public var batchSize: Int
    public var contextLength: Int
    public var steps: Int
    public var learningRate: Float
    public var minLearningRate: Float
    public var warmupSteps: Int
    public var weightDecay: Float
    public var beta1: Float
    public var beta2: Float
    public var eps: Float
    public var gradClip: Float
    public var gradientAccumulation: Int
    public var evalInterval: Int
    public var evalBatches: Int
    public var checkpointInterval: Int
    public var seed: UInt64

    /// The field names of the `train` section.
    public static var fieldNames: [String] { CodingKeys.allCases.map(\.rawValue) }

    /// The largest batch (sequences per optimizer step, before accumulation) a configuration may ask for.
    public static let maxBatchSize = 1 << 20

    enum CodingKeys: String, CodingKey, CaseIterable {
        case batchSize = "batch_size", contextLength = "context_length", steps
        case learningRate = "learning_rate", minLearningRate = "min_learning_rate", warmupSteps = "warmup_steps"
        case weightDecay = "weight_decay", beta1, beta2, eps, gradClip = "grad_clip"
        case gradientAccumulation = "gradient_accumulation", evalInterval = "eval_interval"
        case evalBatches = "eval_batches", checkpointInterval = "checkpoint_interval", seed
    }

    public init(batchSize: Int = 8, contextLength: Int = 128, steps: Int = 100, learningRate: Float = 1e-3,
                minLearningRate: Float = 1e-4, warmupSteps: Int = 10, weightDecay: Float = 0.1, beta1: Float = 0.9,
                beta2: Float = 0.95, eps: Float = 1e-8, gradClip: Float = 1, gradientAccumulation: Int = 1,
                evalInterval: Int = 50, evalBatches: Int = 4, checkpointInterval: Int = 100, seed: UInt64 = 1337) {
        self.batchSize = batchSize; self.contextLength = contextLength; self.steps = steps
        self.learningRate = learningRate; self.minLearningRate = minLearningRate; self.warmupSteps = warmupSteps
        self.weightDecay = weightDecay; self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.gradClip = gradClip
        self.gradientAccumulation = gradientAccumulation; self.evalInterval = evalInterval; self.evalBatches = evalBatches
        self.checkpointInterval = checkpointInterval; self.seed = seed
    }

    public init(from decoder: Decoder) throws {
        let d = TrainSettings()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize) ?? d.batchSize
        contextLength = try c.decodeIfPresent(Int.self, forKey: .contextLength) ?? d.contextLength
        steps = try c.decodeIfPresent(Int.self, forKey: .steps) ?? d.steps
        learningRate = try c.decodeIfPresent(Float.self, forKey: .learningRate) ?? d.learningRate
        minLearningRate = try c.decodeIfPresent(Float.self, forKey: .minLearningRate) ?? learningRate / 10
        warmupSteps = try c.decodeIfPresent(Int.self, forKey: .warmupSteps) ?? d.warmupSteps
        weightDecay = try c.decodeIfPresent(Float.self, forKey: .weightDecay) ?? d.weightDecay
        beta1 = try c.decodeIfPresent(Float.self, forKey: .beta1) ?? d.beta1
        beta2 = try c.decodeIfPresent(Float.self, forKey: .beta2) ?? d.beta2
        eps = try c.decodeIfPresent(Float.self, forKey: .eps) ?? d.eps
        gradClip = try c.decodeIfPresent(Float.self, forKey: .gradClip) ?? d.gradClip
        gradientAccumulation = try c.decodeIfPresent(Int.self, forKey: .gradientAccumulation) ?? d.gradientAccumulation
        evalInterval = try c.decodeIfPresent(Int.self, forKey: .evalInterval) ?? d.evalInterval
        evalBatches = try c.decodeIfPresent(Int.self, forKey: .evalBatches) ?? d.evalBatches
        checkpointInterval = try c.decodeIfPresent(Int.self, forKey: .checkpointInterval) ?? d.checkpointInterval
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? d.seed
    }

    public func validate(model: LlamaConfiguration) throws {
        func check(_ ok: Bool, _ field: String, _ message: String) throws {
            if !ok { throw ConfigurationError("train.\(field): \(message)") }
        }
        try check(batchSize > 0, "batch_size", "must be positive, got \(batchSize)")
        try check(batchSize <= Self.maxBatchSize, "batch_size", "\(batchSize) exceeds Loom's limit of \(Self.maxBatchSize)")
        try check(contextLength > 1, "context_length", "must be at least 2, got \(contextLength)")
        try check(contextLength <= model.maxPositionEmbeddings, "context_length",
                  "\(contextLength) exceeds model.max_position_embeddings \(model.maxPositionEmbeddings)")
        try check(steps >= 0, "steps", "must be non-negative, got \(steps)")
        try check(learningRate.isFinite && learningRate > 0, "learning_rate", "must be a positive number, got \(learningRate)")
        try check(minLearningRate.isFinite && minLearningRate >= 0, "min_learning_rate", "must be a non-negative number, got \(minLearningRate)")
        try check(minLearningRate <= learningRate, "min_learning_rate",
                  "\(minLearningRate) is above learning_rate \(learningRate) (the schedule decays from learning_rate down to it)")
        try check(warmupSteps >= 0, "warmup_steps", "must be non-negative, got \(warmupSteps)")
        try check(weightDecay.isFinite && weightDecay >= 0, "weight_decay", "must be a non-negative number, got \(weightDecay)")
        try check(eps.isFinite && eps > 0, "eps", "must be a positive number, got \(eps)")
        try check(gradClip.isFinite && gradClip >= 0, "grad_clip", "must be a non-negative number (0 = off), got \(gradClip)")
        try check(gradientAccumulation >= 1, "gradient_accumulation", "must be at least 1, got \(gradientAccumulation)")
        try check(gradientAccumulation <= Self.maxBatchSize, "gradient_accumulation", "\(gradientAccumulation) exceeds Loom's limit of \(Self.maxBatchSize)")
        try check(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1, "beta1/beta2", "must be in [0, 1)")
        try check(evalInterval >= 0, "eval_interval", "must be non-negative (0 = no evaluation), got \(evalInterval)")
        try check(evalBatches >= 1, "eval_batches", "must be at least 1 (a validation loss over no batches is meaningless), got \(evalBatches)")
        try check(checkpointInterval >= 0, "checkpoint_interval", "must be non-negative (0 = only the final checkpoint), got \(checkpointInterval)")
        // The largest buffers of a step are the logits: batch × context × vocab floats.
        let (positions, o1) = batchSize.multipliedReportingOverflow(by: contextLength)
        let (logits, o2) = positions.multipliedReportingOverflow(by: model.vocabularySize)
        let (bytes, o3) = logits.multipliedReportingOverflow(by: MemoryLayout<Float>.size)
        let memory = ProcessInfo.processInfo.physicalMemory
        try check(!o1 && !o2 && !o3 && UInt64(bytes) <= memory, "batch_size",
                  "\(batchSize) × context_length \(contextLength) × vocab_size \(model.vocabularySize) logits need "
                  + "\(o1 || o2 || o3 ? "more than 2^63" : String(bytes)) bytes, more than this machine's \(memory) bytes of memory")
    }

    public var adamHyperparameters: AdamW.Hyperparameters {
        AdamW.Hyperparameters(beta1: beta1, beta2: beta2, eps: eps, weightDecay: weightDecay)
    }

    public func schedule(totalSteps: Int? = nil) -> LearningRateSchedule {
        LearningRateSchedule(peak: learningRate, minimum: minLearningRate, warmupSteps: warmupSteps, totalSteps: totalSteps ?? steps)
    }
}
