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
        do { config = try JSONDecoder().decode(TrainingConfiguration.self, from: data) }
        catch let e as ConfigurationError { throw ConfigurationError("\(url.path): \(e.message)") }
        catch { throw ConfigurationError("\(url.path): \(describeDecodingError(error))") }
        do { try config.train.validate(model: config.model) }
        catch let e as ConfigurationError { throw ConfigurationError("\(url.path): \(e.message)") }
        return config
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

    enum CodingKeys: String, CodingKey {
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
        try check(batchSize > 0, "batch_size", "must be positive")
        try check(contextLength > 1, "context_length", "must be at least 2")
        try check(contextLength <= model.maxPositionEmbeddings, "context_length",
                  "\(contextLength) exceeds model.max_position_embeddings \(model.maxPositionEmbeddings)")
        try check(steps >= 0, "steps", "must be non-negative")
        try check(learningRate > 0, "learning_rate", "must be positive")
        try check(gradientAccumulation >= 1, "gradient_accumulation", "must be at least 1")
        try check(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1, "beta1/beta2", "must be in [0, 1)")
    }

    public var adamHyperparameters: AdamW.Hyperparameters {
        AdamW.Hyperparameters(beta1: beta1, beta2: beta2, eps: eps, weightDecay: weightDecay)
    }

    public func schedule(totalSteps: Int? = nil) -> LearningRateSchedule {
        LearningRateSchedule(peak: learningRate, minimum: minLearningRate, warmupSteps: warmupSteps, totalSteps: totalSteps ?? steps)
    }
}
