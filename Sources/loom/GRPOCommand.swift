import ArgumentParser
import Foundation
import LoomData
import LoomInference
import LoomTokenizer
import LoomTrain

struct GRPOCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grpo",
        abstract: "Group Relative Policy Optimization with verifiable rewards (or a reward model) from an SFT model.",
        discussion: """
        Each step samples --batch-size prompts and --group-size answers to each from the current policy; \
        rewards are 1 for an answer the task verifier accepts, else 0 (minus --unfinished-penalty for an \
        answer that reaches --max-new-tokens without ending), normalised within each group; then \
        --updates-per-batch clipped-surrogate steps with a k3 KL penalty (--kl-beta) toward the initial model. \
        With --dynamic-sampling (DAPO), groups whose rewards are all equal are dropped and more prompts \
        are sampled until the batch is full of groups to learn from.
        """)

    @Option(help: "SFT model directory (policy start and KL reference).") var model: String
    @Option(help: "Prompts (JSONL {prompt, answer}); repeatable.") var prompts: [String]
    @Option(help: "Output model directory.") var out: String
    @Option(help: "Samples per prompt (G).") var groupSize: Int?
    @Option(help: "Reward: verifier (answers must match) or model (--reward-model).") var reward: GRPORewardSource = .verifier
    @Option(help: "Reward model directory for --reward model.") var rewardModel: String?
    @Option(help: "Weight of the KL penalty toward the initial model (0: no reference).") var klBeta: Float?
    @Option(help: "Clip range ε of the probability ratio.") var clipEps: Float?
    @Option(help: "Upper clip range (DAPO clip-higher; default --clip-eps).") var clipEpsHigh: Float?
    @Option(help: "Gradient steps per batch of rollouts (μ).") var updatesPerBatch: Int?
    @Option(help: "Longest sampled answer in tokens.") var maxNewTokens: Int?
    @Option(help: "Sampling temperature.") var temperature: Float?
    @Option(help: "Nucleus sampling top-p.") var topP: Float?
    @Option(help: "Reward subtracted from answers that never end.") var unfinishedPenalty: Float?
    @Option(help: "Loss aggregation: token (DAPO/BNPO), sequence (original GRPO) or dr-grpo.") var aggregation: GRPOAggregationFlag = .token
    @Flag(help: "Only centre rewards within a group (Dr. GRPO), do not divide by their std.") var noStdScaling = false
    @Flag(help: "DAPO dynamic sampling: drop groups whose answers are all right or all wrong and sample more prompts until --batch-size groups have a reward spread.") var dynamicSampling = false
    @Option(help: "Most rounds of --batch-size prompts sampled per step with --dynamic-sampling.") var maxSamplingRounds: Int?
    @Option(help: "Held-out prompts with answers: exact-match accuracy (greedy, chat format).") var heldout: String?
    @Option(help: "Longest prompt + response in tokens (default: the model's context).") var maxLength: Int?
    @Flag(help: "Skip malformed JSONL lines (counted) instead of failing.") var skipBadLines = false
    @OptionGroup var stage: StageFlags

    func validate() throws {
        try checkNumericFlags()
        if reward == .model && rewardModel == nil { throw ValidationError("--reward model needs --reward-model DIR") }
        if let maxSamplingRounds, maxSamplingRounds < 1 { throw ValidationError("--max-sampling-rounds must be at least 1, got \(maxSamplingRounds)") }
    }

    func run() throws {
        var options = GRPOOptions(model: URL(fileURLWithPath: model), prompts: prompts.map { URL(fileURLWithPath: $0) }, output: URL(fileURLWithPath: out))
        stage.apply(to: &options.settings)
        if let groupSize { options.groupSize = groupSize }
        options.reward = reward
        options.rewardModel = rewardModel.map { URL(fileURLWithPath: $0) }
        if let klBeta { options.klBeta = klBeta }
        if let clipEps { options.clipEpsilon = clipEps }
        options.clipEpsilonHigh = clipEpsHigh
        if let updatesPerBatch { options.updatesPerBatch = updatesPerBatch }
        if let maxNewTokens { options.maxNewTokens = maxNewTokens }
        if let temperature { options.temperature = temperature }
        if let topP { options.topP = topP }
        if let unfinishedPenalty { options.unfinishedPenalty = unfinishedPenalty }
        options.aggregation = aggregation.aggregation(maxNewTokens: options.maxNewTokens)
        options.scaleRewardsByStd = !noStdScaling
        options.dynamicSampling = dynamicSampling
        if let maxSamplingRounds { options.maxSamplingRounds = maxSamplingRounds }
        options.maxLength = maxLength
        options.skipBadLines = skipBadLines
        options.mode = stage.mode
        options.allowChanges = stage.allowChanges
        let trainer = GRPOTrainer(options: options, evaluate: try heldoutExactMatch(model: options.model, heldout: heldout))
        if options.reward == .model, let directory = options.rewardModel {
            trainer.scoreResponses = try rewardModelScorer(directory: directory, policy: options.model, maxLength: maxLength)
        }
        let summary = try trainer.run()
        var line = String(format: "GRPO done: %d steps in %.0f s; mean reward %.3f → %.3f, accuracy %.3f → %.3f (first → last 10 steps)",
                          summary.steps, summary.seconds, summary.firstMeanReward, summary.meanReward, summary.firstAccuracy, summary.accuracy)
        if let before = summary.initialEvaluation["exact_match"], let after = summary.finalEvaluation["exact_match"] {
            line += String(format: "; held-out exact match %.3f → %.3f", before, after)
        }
        logLine(line + "; model in \(out)")
    }
}

/// Scores (prompt, response) token pairs with the reward model in `directory`
/// (`RewardModel.score`: normalised by the offset saved with it).
func rewardModelScorer(directory: URL, policy: URL, maxLength: Int?) throws -> ([[Int32]], [[Int32]]) throws -> [Float] {
    let rewardModel = try RewardModel.load(directory: directory)
    let tokenizer = try ModelDirectory.loadTokenizer(directory)
    try ModelDirectory.checkTokenizer(tokenizer, fits: rewardModel.model.configuration, directory: directory)
    try ModelDirectory.checkSameTokenizer(try ModelDirectory.loadTokenizer(policy), of: policy, tokenizer, of: directory)
    let padID = Int32(tokenizer.padID ?? tokenizer.endOfTextID)
    let limit = maxLength ?? rewardModel.model.configuration.maxPositionEmbeddings
    return { prompts, responses in rewardModel.score(prompts: prompts, responses: responses, padID: padID, maxLength: limit) }
}
