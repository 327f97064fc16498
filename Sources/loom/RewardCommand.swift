import ArgumentParser
import Foundation
import LoomTrain

/// `loom reward`: trains a reward model from an SFT model on pairwise and K-wise preferences.
struct RewardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reward",
        abstract: "Train a reward model (score head on the SFT model) on preference pairs and K-wise rankings.",
        discussion: """
            Data lines are pairs {"prompt", "chosen", "rejected"} or rankings {"prompt", "responses": [...], \
            "ranking": [best … worst]} (K = 2…9), mixed freely. All responses of a prompt share one forward pass \
            and its C(K,2) pairs form one batch element (InstructGPT). Held-out pair accuracy and mean margin are \
            reported at every eval interval. At the end the mean reward of the reference answers (the best-ranked \
            response of every training prompt, or --demonstrations) is written to reward_config.json as \
            reward_mean; Loom's reward scoring subtracts it, so the demonstrations score 0 on average.
            """)

    @Option(help: "SFT model directory to start from.") var model: String
    @Option(help: "Preference data (JSONL pairs and/or rankings); repeatable.") var data: [String]
    @Option(help: "Output reward-model directory.") var out: String
    @Option(help: "Held-out preference data (JSONL); repeatable. Default: a seeded --val-fraction of --data.") var heldout: [String] = []
    @Option(help: "Fraction of --data held out when no --heldout is given.") var valFraction: Double = 0.1
    @Flag(help: "Use each pair's \"margin\" field: loss −log σ(r_chosen − r_rejected − margin) (Llama 2).") var margin = false
    @Option(help: "Reward-centering coefficient C: adds C·mean((r_better + r_worse)²) (TRL center_rewards_coefficient).") var centerCoef: Float = 0
    @Option(help: "SFT chat JSONL whose answers define reward 0 (default: the best-ranked response of each training prompt).") var demonstrations: String?
    @Option(help: "Longest prompt + response in tokens (default: the model's context).") var maxLength: Int?
    @Flag(help: "Skip malformed JSONL lines (counted) instead of failing.") var skipBadLines = false
    @OptionGroup var stage: StageFlags

    func validate() throws {
        try checkNumericFlags()
        guard valFraction > 0, valFraction < 1 else { throw ValidationError("--val-fraction must be between 0 and 1") }
        guard centerCoef >= 0 else { throw ValidationError("--center-coef must not be negative") }
    }

    func run() throws {
        var options = RewardOptions(model: URL(fileURLWithPath: model), data: data.map { URL(fileURLWithPath: $0) },
                                    output: URL(fileURLWithPath: out))
        stage.apply(to: &options.settings)
        options.heldout = heldout.map { URL(fileURLWithPath: $0) }
        options.validationFraction = valFraction
        options.useMargins = margin
        options.centeringCoefficient = centerCoef
        options.demonstrations = demonstrations.map { URL(fileURLWithPath: $0) }
        options.maxLength = maxLength
        options.skipBadLines = skipBadLines
        options.mode = stage.mode
        options.allowChanges = stage.allowChanges
        let summary = try RewardTrainer(options: options).run()
        logLine(String(format: "reward done: held-out pair accuracy %.4f, mean margin %.4f, train loss %.4f, reward mean %.4f (subtracted), %d steps in %.0f s; model in %@",
                       summary.heldoutPairAccuracy, summary.heldoutMeanMargin, summary.trainLoss, summary.rewardMean,
                       summary.steps, summary.seconds, out))
    }
}
