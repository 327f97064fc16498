import Foundation
import LoomTokenizer

extension StageSettings {
    /// Throws unless every setting is in range and the settings agree with each other, naming
    /// the setting (as its command-line flag) and the value. Every stage calls it before it
    /// loads anything, so a library caller gets the same checks as the command line.
    public func validate(stage: String) throws {
        func check(_ ok: Bool, _ flag: String, _ message: String) throws {
            if !ok { throw TrainingError("\(stage): --\(flag) \(message)") }
        }
        try check(steps >= 1, "steps", "must be at least 1, got \(steps)")
        try check(batchSize >= 1, "batch-size", "must be at least 1, got \(batchSize)")
        try check(batchSize <= TrainSettings.maxBatchSize, "batch-size", "\(batchSize) exceeds Loom's limit of \(TrainSettings.maxBatchSize)")
        try check(learningRate.isFinite && learningRate > 0, "learning-rate", "must be a positive number, got \(learningRate)")
        try check(minLearningRate.isFinite && minLearningRate >= 0, "min-learning-rate", "must be a non-negative number, got \(minLearningRate)")
        try check(minLearningRate <= learningRate, "min-learning-rate",
                  "\(minLearningRate) is above the learning rate \(learningRate) (the schedule decays from the learning rate down to it)")
        try check(warmupSteps >= 0, "warmup-steps", "must be non-negative, got \(warmupSteps)")
        try check(weightDecay.isFinite && weightDecay >= 0, "weight-decay", "must be a non-negative number, got \(weightDecay)")
        try check(gradClip.isFinite && gradClip >= 0, "grad-clip", "must be a non-negative number (0 = off), got \(gradClip)")
        try check(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1, "beta1/beta2", "must be in [0, 1)")
        try check(evalInterval >= 0, "eval-interval", "must be non-negative (0 = off), got \(evalInterval)")
        try check(checkpointInterval >= 0, "checkpoint-interval", "must be non-negative (0 = off), got \(checkpointInterval)")
        try check(logInterval >= 1, "log-interval", "must be at least 1, got \(logInterval)")
        try check(threads >= 1 && threads <= 4096, "threads", "must be in 1...4096, got \(threads)")
    }
}

/// Throws unless `fraction` is strictly between 0 and 1 (a held-out share of the examples).
func checkValidationFraction(_ fraction: Double, stage: String) throws {
    guard fraction.isFinite, fraction > 0, fraction < 1 else {
        throw TrainingError("\(stage): --val-fraction must be between 0 and 1 (exclusive), got \(fraction)")
    }
}

/// Tokens the chat template adds around an empty user turn and an empty answer: the least an
/// example of any stage takes before its text.
func chatTemplateTokens(_ tokenizer: ByteLevelBPETokenizer) -> Int {
    tokenizer.chatTemplate.encodeForTraining([ChatMessage(role: "user", content: ""), ChatMessage(role: "assistant", content: "")],
                                             tokenizer: tokenizer).ids.count
}

/// Throws unless `maxLength` leaves room for an answer after the chat template's own tokens
/// (`templateTokens`: the tokens of an empty prompt and answer), naming the flag.
func checkMaxLength(_ maxLength: Int?, contextLength: Int, templateTokens: Int, stage: String) throws {
    guard let maxLength else { return }
    guard maxLength > templateTokens else {
        throw TrainingError("\(stage): --max-length \(maxLength) leaves no room for text: the chat template alone takes \(templateTokens) tokens")
    }
    guard maxLength <= contextLength else {
        throw TrainingError("\(stage): --max-length \(maxLength) exceeds the model's context of \(contextLength) tokens")
    }
}
