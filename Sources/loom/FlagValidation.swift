import ArgumentParser
import Foundation
import LoomTrain

// Range checks of every numeric flag, run by ArgumentParser before `run()`: an out-of-range
// value is a usage error naming the flag and the value, never a division by zero or a
// precondition failure deep inside a stage (the kernels are compiled without checks).

/// Checks of one flag's value; nil (an unset optional flag) always passes.
enum FlagRange {
    static func atLeast(_ minimum: Int, _ value: Int?, _ flag: String) throws {
        if let value, value < minimum { throw ValidationError("--\(flag) must be at least \(minimum), got \(value)") }
    }

    static func within(_ range: ClosedRange<Int>, _ value: Int?, _ flag: String) throws {
        if let value, !range.contains(value) {
            throw ValidationError("--\(flag) must be in \(range.lowerBound)...\(range.upperBound), got \(value)")
        }
    }

    static func positive<F: BinaryFloatingPoint>(_ value: F?, _ flag: String) throws {
        if let value, !(value.isFinite && value > 0) { throw ValidationError("--\(flag) must be a positive number, got \(value)") }
    }

    static func nonNegative<F: BinaryFloatingPoint>(_ value: F?, _ flag: String) throws {
        if let value, !(value.isFinite && value >= 0) { throw ValidationError("--\(flag) must be a non-negative number, got \(value)") }
    }

    static func finite<F: BinaryFloatingPoint>(_ value: F?, _ flag: String) throws {
        if let value, !value.isFinite { throw ValidationError("--\(flag) must be a finite number, got \(value)") }
    }

    /// In `lower...upper`, or `lower..<upper` / `(lower, upper]` / `(lower, upper)` as the flags say.
    static func interval<F: BinaryFloatingPoint>(_ value: F?, _ flag: String, _ lower: F, _ upper: F,
                                                 openLower: Bool = false, openUpper: Bool = false) throws {
        guard let value else { return }
        let aboveLower = openLower ? value > lower : value >= lower
        let belowUpper = openUpper ? value < upper : value <= upper
        if !(value.isFinite && aboveLower && belowUpper) {
            throw ValidationError("--\(flag) must be in \(openLower ? "(" : "[")\(lower), \(upper)\(openUpper ? ")" : "]"), got \(value)")
        }
    }

    /// Threads: at least one, and not absurdly many.
    static func threads(_ value: Int?) throws { try within(1...4096, value, "threads") }

    /// A token length (--max-length and the like): room for at least a prompt and an answer token.
    static func tokenLength(_ value: Int?, _ flag: String) throws { try within(2...(1 << 20), value, flag) }
}

extension StageFlags {
    func validate() throws {
        try FlagRange.atLeast(1, steps, "steps")
        try FlagRange.within(1...TrainSettings.maxBatchSize, batchSize, "batch-size")
        try FlagRange.positive(learningRate, "learning-rate")
        try FlagRange.nonNegative(minLearningRate, "min-learning-rate")
        if let learningRate, let minLearningRate, minLearningRate > learningRate {
            throw ValidationError("--min-learning-rate \(minLearningRate) is above --learning-rate \(learningRate) (the schedule decays from the learning rate down to it)")
        }
        try FlagRange.atLeast(0, warmupSteps, "warmup-steps")
        try FlagRange.nonNegative(weightDecay, "weight-decay")
        try FlagRange.nonNegative(gradClip, "grad-clip")
        try FlagRange.atLeast(0, evalInterval, "eval-interval")          // 0 = off
        try FlagRange.atLeast(0, checkpointInterval, "checkpoint-interval")  // 0 = off
        try FlagRange.atLeast(1, logInterval, "log-interval")
        try FlagRange.threads(threads)
        try validateRunFlags(resume: resume, overwrite: overwrite, allowChanges: allowChanges, keepCheckpoints: keepCheckpoints)
        try validateLoRAFlags()
        try validatePrecision(precision)
    }

    /// The rank's upper bound depends on the model and is checked when it is loaded.
    func validateLoRAFlags() throws {
        try FlagRange.atLeast(1, loraRank, "lora-rank")
        try FlagRange.positive(loraAlpha, "lora-alpha")
        try FlagRange.interval(loraDropout, "lora-dropout", 0, 1, openUpper: true)
        if let loraTargets {
            do { _ = try LoRASettings.parseTargets(loraTargets) } catch { throw ValidationError("\(error)") }
        }
        if loraRank == nil, let other = [(loraAlpha != nil, "--lora-alpha"), (loraDropout != nil, "--lora-dropout"), (loraTargets != nil, "--lora-targets")].first(where: { $0.0 }) {
            throw ValidationError("\(other.1) only applies with --lora-rank")
        }
    }
}

extension SFTCommand {
    func validate() throws {
        try FlagRange.interval(valFraction, "val-fraction", 0, 1, openLower: true, openUpper: true)
        try FlagRange.tokenLength(maxLength, "max-length")
    }
}

extension PPOCommand {
    func validate() throws {
        try FlagRange.nonNegative(ptxCoef, "ptx-coef")
        try FlagRange.nonNegative(klCoef, "kl-coef")
        try FlagRange.positive(targetKl, "target-kl")
        try FlagRange.interval(gamma, "gamma", 0, 1)
        try FlagRange.interval(lambda, "lambda", 0, 1)
        try FlagRange.positive(clipRange, "clip-range")
        try FlagRange.positive(valueClipRange, "value-clip-range")
        try FlagRange.positive(valueLearningRate, "value-learning-rate")
        try FlagRange.atLeast(0, criticWarmup, "critic-warmup")
        try FlagRange.atLeast(1, ppoEpochs, "ppo-epochs")
        try FlagRange.atLeast(1, minibatches, "minibatches")
        if let batchSize = stage.batchSize, minibatches > batchSize {
            throw ValidationError("--minibatches \(minibatches) exceeds --batch-size \(batchSize): a minibatch would hold no rollout")
        }
        try FlagRange.within(1...(1 << 20), maxNewTokens, "max-new-tokens")
        try FlagRange.positive(temperature, "temperature")
        try FlagRange.finite(missingEosPenalty, "missing-eos-penalty")
    }
}

extension DPOCommand {
    func checkNumericFlags() throws {
        try FlagRange.positive(beta, "beta")
        try FlagRange.interval(labelSmoothing, "label-smoothing", 0, 0.5, openUpper: true)
        try FlagRange.nonNegative(sftWeight, "sft-weight")
        try FlagRange.atLeast(0, selfRejectedSamples, "self-rejected-samples")
        try FlagRange.atLeast(1, selfRejectedLimit, "self-rejected-limit")
        try FlagRange.interval(valFraction, "val-fraction", 0, 1, openUpper: true)
        try FlagRange.tokenLength(maxLength, "max-length")
    }
}

extension GRPOCommand {
    func checkNumericFlags() throws {
        try FlagRange.within(2...(1 << 16), groupSize, "group-size")
        try FlagRange.nonNegative(klBeta, "kl-beta")
        try FlagRange.positive(clipEps, "clip-eps")
        try FlagRange.positive(clipEpsHigh, "clip-eps-high")
        try FlagRange.atLeast(1, updatesPerBatch, "updates-per-batch")
        try FlagRange.within(1...(1 << 20), maxNewTokens, "max-new-tokens")
        try FlagRange.positive(temperature, "temperature")
        try FlagRange.interval(topP, "top-p", 0, 1, openLower: true)
        try FlagRange.nonNegative(unfinishedPenalty, "unfinished-penalty")
        try FlagRange.tokenLength(maxLength, "max-length")
    }
}

extension RewardCommand {
    func checkNumericFlags() throws {
        try FlagRange.tokenLength(maxLength, "max-length")
        try FlagRange.nonNegative(centerCoef, "center-coef")
    }
}

extension EvalCommand {
    func checkNumericFlags() throws {
        try FlagRange.atLeast(0, shots, "shots")
        try FlagRange.tokenLength(context, "context")
        try FlagRange.within(1...(1 << 20), maxTokens, "max-tokens")
        try FlagRange.atLeast(1, limit, "limit")
        try FlagRange.threads(threads)
        try FlagRange.atLeast(0, sampled, "sampled")
    }
}

extension SamplingOptions {
    func validate() throws {
        try FlagRange.within(1...(1 << 20), maxTokens, "max-tokens")
        try FlagRange.nonNegative(temperature, "temperature")
        try FlagRange.atLeast(0, topK, "top-k")
        try FlagRange.interval(topP, "top-p", 0, 1, openLower: true)
        try FlagRange.positive(repetitionPenalty, "repetition-penalty")
    }
}

extension GenerateCommand {
    func validate() throws {
        try FlagRange.threads(threads)
        guard !prompt.isEmpty else { throw ValidationError("--prompt is empty") }
    }
}

extension PretrainCommand {
    func validate() throws {
        try FlagRange.atLeast(1, steps, "steps")
        try FlagRange.atLeast(1, scheduleSteps, "schedule-steps")
        try FlagRange.threads(threads)
        try FlagRange.atLeast(1, logInterval, "log-interval")
        try validateRunFlags(resume: resume, overwrite: overwrite, allowChanges: allowChanges, keepCheckpoints: keepCheckpoints)
        try validatePrecision(precision)
    }
}

extension PrepareCommand {
    func validate() throws {
        try FlagRange.within(257...(1 << 24), vocabSize, "vocab-size")
        try FlagRange.interval(valFraction, "val-fraction", 0, 1, openUpper: true)
        try FlagRange.interval(nearDupThreshold, "near-dup-threshold", 0, 1, openLower: true)
        try FlagRange.atLeast(1, maxDocs, "max-docs")
        try FlagRange.atLeast(0, minChars, "min-chars")
        try FlagRange.atLeast(1, boilerplateMinDocs, "boilerplate-min-docs")
        try FlagRange.interval(boilerplateFraction, "boilerplate-fraction", 0, 1, openLower: true)
        try FlagRange.within(1...4096, lshBands, "lsh-bands")
        try FlagRange.within(1...4096, lshRows, "lsh-rows")
        try FlagRange.atLeast(1, shardTokens, "shard-tokens")
        try FlagRange.atLeast(0, tokenizerTrainBytes, "tokenizer-train-bytes")
        try FlagRange.threads(threads)
    }
}

extension PipelineCommand {
    func checkNumericFlags() throws {
        for (value, flag) in [(pretrainSteps, "pretrain-steps"), (sftSteps, "sft-steps"), (rewardSteps, "reward-steps"),
                              (ppoSteps, "ppo-steps"), (dpoSteps, "dpo-steps"), (grpoSteps, "grpo-steps")] as [(Int?, String)] {
            try FlagRange.atLeast(1, value, flag)
        }
        try FlagRange.atLeast(0, pretrainTaskDocuments, "pretrain-task-documents")
        try FlagRange.threads(threads)
    }
}
