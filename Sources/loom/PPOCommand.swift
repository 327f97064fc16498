import ArgumentParser
import Foundation
import LoomData
import LoomEval
import LoomTokenizer
import LoomTrain

struct PPOCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ppo",
        abstract: "PPO on the SFT policy against a reward model, KL-penalised to the SFT model, optionally mixed with the pretraining loss (PPO-ptx).",
        discussion: """
        Each iteration samples --batch-size prompts, generates answers with the policy, scores them with the reward \
        model, and runs --ppo-epochs passes of --minibatches updates. The critic starts from the reward model and is \
        saved with PPO's statistics in each checkpoint (OUT/checkpoints/step-N/critic); OUT itself is the policy. Logged per iteration to OUT/metrics.jsonl: reward, KL to SFT, entropy, response length, \
        clip fraction, value loss, explained variance, and the SFT model's perplexity on the policy's answers.
        """)

    @Option(help: "SFT model directory (the initial policy and the KL reference).") var policy: String
    @Option(help: "Reward model directory (from `loom reward`); also the critic's initialisation.") var reward: String
    @Option(help: "Prompts JSONL ({\"prompt\", \"answer\"?}).") var prompts: String
    @Option(help: "Output model directory.") var out: String
    @Option(help: "Held-out prompts with answers: exact-match accuracy at evaluation intervals.") var heldout: String?
    @Option(help: "Token shards (from `loom prepare`) for the pretraining mix.") var ptxData: String?
    @Option(help: "γ: weight of the pretraining loss.") var ptxCoef: Float = 0.5
    @Option(help: "Pretraining windows per update (per rank under mpirun, like --batch-size).") var ptxBatchSize: Int = 4
    @Option(help: "Initial KL coefficient β.") var klCoef: Float = 0.05
    @Option(help: "Target KL for the adaptive controller (off when unset).") var targetKl: Float?
    @Option(help: "GAE γ.") var gamma: Float = 1
    @Option(help: "GAE λ.") var lambda: Float = 0.95
    @Option(help: "PPO clip range ε.") var clipRange: Float = 0.2
    @Option(help: "Value clip range.") var valueClipRange: Float = 0.2
    @Option(help: "Critic learning rate.") var valueLearningRate: Float = 5e-4
    @Option(help: "Iterations at the start that fit only the critic (PPO-max critic pre-training); they count toward --steps.")
    var criticWarmup: Int = 0
    @Option(help: "Passes over each rollout batch.") var ppoEpochs: Int = 2
    @Option(help: "Minibatches per pass.") var minibatches: Int = 2
    @Option(help: "Longest answer in tokens.") var maxNewTokens: Int = 16
    @Option(help: "Sampling temperature of rollouts.") var temperature: Float = 1
    @Option(help: "Reward for answers that never end.") var missingEosPenalty: Float = -3
    @OptionGroup var stage: StageFlags

    func run() throws {
        var options = PPOOptions(policy: URL(fileURLWithPath: policy), rewardModel: URL(fileURLWithPath: reward),
                                 prompts: URL(fileURLWithPath: prompts), output: URL(fileURLWithPath: out))
        stage.apply(to: &options.settings)
        options.mode = stage.mode
        options.allowChanges = stage.allowChanges
        options.ptxData = ptxData.map { URL(fileURLWithPath: $0) }
        options.ptxCoefficient = ptxCoef
        options.ptxBatchSize = ptxBatchSize
        options.klCoefficient = klCoef
        options.targetKL = targetKl
        options.gamma = gamma; options.lambda = lambda
        options.clipRange = clipRange; options.valueClipRange = valueClipRange
        options.valueLearningRate = valueLearningRate
        options.criticWarmupIterations = criticWarmup
        options.ppoEpochs = ppoEpochs; options.minibatches = minibatches
        options.maxNewTokens = maxNewTokens; options.temperature = temperature
        options.missingEOSPenalty = missingEosPenalty
        let trainer = PPOTrainer(options: options)
        if let heldout {
            let examples = try PromptDataset.load(URL(fileURLWithPath: heldout)).examples
            let tokenizer = try ByteLevelBPETokenizer(contentsOf: URL(fileURLWithPath: policy).appendingPathComponent("tokenizer.json"))
            trainer.evaluate = { model in
                ["heldout_accuracy": exactMatchAccuracy(model: model, tokenizer: tokenizer, prompts: examples, format: .chat,
                                                        maxTokens: maxNewTokens).accuracy]
            }
        }
        let summary = try trainer.run()
        logLine(String(format: "PPO done: %d iterations, mean reward %.3f (first 10 iterations %.3f), KL %.3f, %.0f s; policy in %@",
                       summary.iterations, summary.meanReward, summary.firstMeanReward, summary.kl, summary.seconds, out))
    }
}
