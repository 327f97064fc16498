import Foundation
import LoomSupport
import LoomTensor
import LoomData
import LoomEval
import LoomInference
import LoomTokenizer
import LoomTrain

/// The stages `--stop-after` can end a pipeline run after.
public enum PipelineStage: String, CaseIterable, Sendable {
    case pretrain, sft, reward, ppo, dpo, grpo
}

/// The main job as a library: a recipe (`PipelineRecipe`) run stage by stage into an output
/// directory — tasks, data, base model, SFT, reward model, PPO-ptx, DPO, GRPO — each proving on
/// the dev split that it did its job, then every model measured once on the test split, ending
/// in `report.md` (with charts) and `report.json`. The command line (`loom pipeline`) only parses
/// flags into a recipe and calls `run()`.
///
///     let pipeline = Pipeline(recipe: try PipelineRecipe.load(URL(fileURLWithPath: "configs/pipeline.json")),
///                             output: URL(fileURLWithPath: "runs/demo"))
///     let report = try pipeline.run()
public final class Pipeline {
    public let recipe: PipelineRecipe
    public let output: URL
    /// How every stage treats its directory: `.resumeIfPresent` keeps finished stages and
    /// resumes an interrupted one; `.overwrite` replaces a run; `.fresh` refuses an existing one.
    public var mode: RunMode
    public var stopAfter: PipelineStage?
    public var threads: Int
    /// False for runs that choose settings (`--dev-only`, Benchmarks/sweep_rl_dev.sh): every
    /// stage and its dev accuracy as usual, but no model is evaluated on the test split.
    public var evaluatesTest = true
    /// Precision of every training stage's matrix products (`--precision`, `MatrixPrecision`).
    public var precision: MatrixPrecision = .fp32

    public init(recipe: PipelineRecipe, output: URL, mode: RunMode = .fresh, stopAfter: PipelineStage? = nil,
                threads: Int = ProcessInfo.processInfo.activeProcessorCount) {
        self.recipe = recipe; self.output = output; self.mode = mode; self.stopAfter = stopAfter; self.threads = threads
    }

    /// Runs every stage (up to `stopAfter`), then the test evaluation, writing `report.md` and
    /// `report.json` into the output directory (also when a stage fails: what was measured
    /// until then). Returns the report.
    @discardableResult
    public func run() throws -> PipelineReport {
        let start = Date()
        let root = output
        let stageDirectories = ["base", "sft", "reward", "ppo", "dpo", "grpo"].map { root.appendingPathComponent($0) }
        if mode == .fresh {
            let held = stageDirectories.filter { CheckpointStore(runDirectory: $0).holdsRun() }.map(\.lastPathComponent)
            if !held.isEmpty || FileManager.default.fileExists(atPath: root.appendingPathComponent("report.json").path) {
                throw RecipeError("\(root.path) already holds a pipeline run (\(held.isEmpty ? "report.json" : held.joined(separator: ", "))); pass --resume to continue it or --overwrite to replace it")
            }
        }
        try recipe.validate()
        let lock = try RunLock(directory: root)
        defer { lock.release() }
        try AtomicFile.write(recipe.jsonData(), to: root.appendingPathComponent("recipe.json"))
        Threading.configure(threads: threads)
        let report = PipelineReport(directory: root)
        // Wall time of each stage (its header to the next one's), in report.json's stage_seconds.
        var current: (key: String, started: Date)?
        func closeStage() {
            if let current { report.set("stage_seconds", current.key, Date().timeIntervalSince(current.started)) }
            current = nil
        }
        defer {
            closeStage()
            report.seconds = Date().timeIntervalSince(start)
            do { try report.write() } catch { logLine("error: could not write the report in \(root.path): \(error)") }
            logLine("report: \(root.appendingPathComponent("report.md").path) (\(String(format: "%.0f", report.seconds)) s)")
        }
        let configuration = try TrainingConfiguration.load(URL(fileURLWithPath: recipe.pretrain.config))
        let taskKinds = try recipe.taskKinds()
        func stage(_ name: String) {
            closeStage()
            current = (String(name.prefix { $0 != ":" }), Date())
            logLine("\n== \(name)  [\(DurationText.format(Date().timeIntervalSince(start))) elapsed]")
        }

        // Instruction tasks: train, dev and test problems are disjoint up to each kind's symmetries.
        stage("tasks: \(taskKinds.map(\.rawValue).joined(separator: ", "))")
        let tasksDirectory = root.appendingPathComponent("tasks")
        let summary = try InstructionTaskFiles.write(to: tasksDirectory, train: recipe.tasks.train, dev: recipe.tasks.dev, test: recipe.tasks.test, seed: recipe.tasks.seed,
                                                     kinds: taskKinds, demonstrations: recipe.tasks.demonstrations)
        logLine(summary.description)
        // Dev for every figure a setting could be chosen by (and the stages' own evaluations);
        // test evaluated once, at the end, for the headline table.
        let dev = try PromptDataset.load(tasksDirectory.appendingPathComponent(InstructionTaskFiles.promptsDev)).examples
        let test = try PromptDataset.load(tasksDirectory.appendingPathComponent(InstructionTaskFiles.promptsTest)).examples
        let trainPrompts = try PromptDataset.load(tasksDirectory.appendingPathComponent(InstructionTaskFiles.promptsTrain)).examples
        var pretrainInputs = recipe.pretrain.data
        if recipe.tasks.worksheets > 0 {
            let worksheet = tasksDirectory.appendingPathComponent("pretrain_worksheets.jsonl")
            try writeWorksheets(to: worksheet, documents: recipe.tasks.worksheets, kinds: taskKinds)
            pretrainInputs.append(worksheet.path)
        }

        // 1. Data.
        stage("prepare: \(pretrainInputs.joined(separator: ", "))")
        var prepare = PrepareOptions(inputs: pretrainInputs, outputDirectory: root.appendingPathComponent("data"))
        prepare.vocabSize = configuration.model.vocabularySize
        let prepared = try PreparePipeline.run(prepare)
        reportData(prepared.manifest, report)
        // PPO-ptx's pretraining term samples text without the worksheets: no answers to task
        // problems reach the RL stage through it. Same tokenizer, so the ids mean the same.
        let ptxDirectory = root.appendingPathComponent("data-ptx")
        var preparePTX = PrepareOptions(inputs: recipe.pretrain.data, outputDirectory: ptxDirectory)
        preparePTX.tokenizerPath = root.appendingPathComponent("data").appendingPathComponent("tokenizer.json").path
        preparePTX.showProgress = false
        _ = try PreparePipeline.run(preparePTX, log: { _ in })

        // 2. Pretraining.
        stage("pretrain: \(recipe.pretrain.config)")
        let baseDirectory = root.appendingPathComponent("base")
        var pretrainOptions = PretrainOptions(
            configuration: configuration, dataDirectory: root.appendingPathComponent("data"),
            outputDirectory: baseDirectory, steps: recipe.pretrain.steps, threads: threads, logInterval: 25)
        pretrainOptions.mode = mode
        pretrainOptions.precision = precision
        let pretrain = try Pretrainer(options: pretrainOptions).run()
        try reportPretraining(pretrain, directory: baseDirectory, report)
        let baseModel = try LlamaModel.load(directory: baseDirectory)
        let tokenizer = try ByteLevelBPETokenizer(contentsOf: baseDirectory.appendingPathComponent("tokenizer.json"))
        try reportSamples(baseModel, tokenizer, report)
        let shots = Array(trainPrompts.prefix(5))
        let testKinds = test.map { InstructionTask.kind(ofSource: $0.source)?.rawValue ?? "other" }
        let kindNames = Array(Set(testKinds)).sorted()
        func accuracyByKind(_ r: ExactMatchResult) -> [String: Double] { r.accuracyByGroup(testKinds) }
        /// How a model is prompted: the base model 5-shot with plain Question/Answer text, the
        /// others with one chat turn.
        func format(_ key: String) -> PromptFormat { key == "base" ? .fewShot(shots) : .chat }
        // The alignment tax: every model's loss on the pretraining validation text (the same
        // windows for all), which fine-tuning on short answers raises and PPO-ptx pulls back.
        let validationText = try TokenDataset(directory: root.appendingPathComponent("data"), split: "val")
        func pretrainingText(_ model: LlamaModel) -> EvaluationResult {
            evaluateLanguageModel(model: model, dataset: validationText, tokenizer: tokenizer, batch: 8,
                                  context: min(256, model.configuration.maxPositionEmbeddings), batches: 32)
        }
        func accuracyRow(_ label: String, _ r: ExactMatchResult, textLoss: Double, sampled: SampledExactMatch? = nil) -> [String] {
            let byKind = accuracyByKind(r)
            return [label, String(format: "%.1f %%", r.accuracy * 100), "\(r.correct)/\(r.total)"]
                + kindNames.map { String(format: "%.1f %%", (byKind[$0] ?? .nan) * 100) }
                + [sampled.map { String(format: "%.1f %%", $0.accuracy * 100) } ?? "–",
                   sampled.map { String(format: "%.1f %%", $0.passAt($0.samplesPerPrompt) * 100) } ?? "–",
                   String(format: "%.3f", textLoss)]
        }
        let baseTextTokens = pretrainingText(baseModel).tokens
        report.set("base", "format", "5-shot, plain Question/Answer text")
        if let rlSeed = recipe.rlSeed { report.set("recipe", "rl_seed", rlSeed) }

        // Dev accuracy: what settings are chosen by. Every model as it is made.
        var devRows: [[String]] = []
        func recordDev(_ key: String, _ label: String, _ model: LlamaModel) {
            let result = exactMatchAccuracy(model: model, tokenizer: tokenizer, prompts: dev, format: format(key))
            logLine(String(format: "%@: dev exact match %.3f", label, result.accuracy))
            report.set(key, "dev_accuracy", result.accuracy)
            devRows.append([label, String(format: "%.1f %%", result.accuracy * 100), "\(result.correct)/\(result.total)"])
            report.replaceSection("Dev accuracy", "Greedy exact match on \(dev.count) dev problems, the split every setting of this recipe is chosen on (never the test split). Measured after each stage.\n\n"
                                  + markdownTable(["model", "dev accuracy", "correct"], devRows))
        }
        recordDev("base", "base (5-shot)", baseModel)
        func evaluateDev(_ model: LlamaModel) -> ExactMatchResult {
            exactMatchAccuracy(model: model, tokenizer: tokenizer, prompts: dev, format: .chat)
        }
        /// The models this run made, in order, for the final test evaluation.
        var trained: [(key: String, label: String, directory: URL)] = [("base", "base (5-shot)", baseDirectory)]
        var rewardDirectoryForTest: URL? = nil

        /// Everything after pretraining; returns early after `--stop-after`'s stage.
        func runStages() throws {
        if stopAfter == .pretrain { return }

        // 3. SFT on the task demonstrations plus real human-written Q&A.
        stage("SFT")
        let sftDirectory = root.appendingPathComponent("sft")
        var sft = SFTOptions(model: baseDirectory, data: [tasksDirectory.appendingPathComponent(InstructionTaskFiles.sftTrain)] + recipe.sft.extraData.map { URL(fileURLWithPath: $0) },
                             output: sftDirectory)
        sft.mode = mode
        sft.settings.steps = recipe.sft.steps
        // Batches of similar length: the few long FAQ answers no longer pad every batch to ~256
        // tokens (Benchmarks/sft_group_by_length.sh) nor outweigh the short task answers in each
        // batch's token-mean loss.
        sft.groupByLength = true
        sft.settings.batchSize = recipe.sft.batchSize
        sft.settings.learningRate = recipe.sft.learningRate
        sft.settings.minLearningRate = recipe.sft.minLearningRate
        sft.settings.warmupSteps = recipe.sft.warmupSteps
        sft.settings.evalInterval = 250
        sft.settings.logInterval = 100
        sft.settings.threads = threads
        sft.settings.precision = precision
        let sftSummary = try SFTTrainer(options: sft).run()
        recordDev("sft", "SFT", try LlamaModel.load(directory: sftDirectory))
        trained.append(("sft", "SFT", sftDirectory))
        report.set("sft", "val_loss", sftSummary.validationLoss)
        report.set("sft", "examples", sftSummary.examples)
        report.set("sft", "steps", sftSummary.steps)
        report.set("sft", "demonstrations", recipe.tasks.demonstrations)
        report.section("SFT", "\(sftSummary.examples) examples: \(recipe.tasks.demonstrations) task demonstrations (a written answer for \(String(format: "%.0f %%", 100 * Double(recipe.tasks.demonstrations) / Double(recipe.tasks.train))) as many problems as the RL stages get prompts for: demonstrations cost more than grades, as in InstructGPT) \(recipe.sft.extraData.isEmpty ? "" : " and \(recipe.sft.extraData.map { URL(fileURLWithPath: $0).lastPathComponent }.joined(separator: ", "))"), \(sftSummary.steps) steps of \(sft.settings.batchSize) examples of similar length, loss on assistant tokens only. Validation loss \(String(format: "%.4f", sftSummary.validationLoss)).")
        if stopAfter == .sft { return }

        // 4. Reward model on the rankings: constructed responses and the SFT model's own graded answers.
        stage("reward model")
        if recipe.tasks.rankSamples > 0 {
            // The rankings' rule asks for the SFT model's own answers, graded by the verifier,
            // beside the constructed ones: the reward model then sees the mistakes PPO's policy makes.
            let started = Date()
            let placed = try RankingsWithSamples.write(to: tasksDirectory, model: sftDirectory,
                                                       counts: [.train: recipe.tasks.train, .dev: recipe.tasks.dev, .test: recipe.tasks.test],
                                                       seed: recipe.tasks.seed, kinds: taskKinds, samples: recipe.tasks.rankSamples)
            logLine(String(format: "rankings: %d SFT answers per prompt graded into them (%d rankings hold at least one) in %.0f s", recipe.tasks.rankSamples, placed, Date().timeIntervalSince(started)))
            report.set("reward", "rankings_with_sft_answers", placed)
        }
        let rewardDirectory = root.appendingPathComponent("reward")
        var reward = RewardOptions(model: sftDirectory, data: [tasksDirectory.appendingPathComponent(InstructionTaskFiles.rankingsTrain)], output: rewardDirectory)
        reward.mode = mode
        reward.heldout = [tasksDirectory.appendingPathComponent(InstructionTaskFiles.rankingsDev)]
        reward.settings.steps = recipe.reward.steps
        reward.settings.threads = threads
        reward.settings.precision = precision
        let rewardSummary = try RewardTrainer(options: reward).run()
        rewardDirectoryForTest = rewardDirectory
        report.set("reward", "dev_pair_accuracy", rewardSummary.heldoutPairAccuracy)
        report.set("reward", "dev_mean_margin", rewardSummary.heldoutMeanMargin)
        report.set("reward", "reward_mean_offset", rewardSummary.rewardMean)
        report.section("Reward model", """
            Rankings are constructed by a stated rule (\(RankingBuilder.rule)), K = 4 answers per prompt, all C(4,2) pairs of a prompt in one batch element. \(recipe.tasks.rankSamples > 0 ? "The SFT model's own answers (greedy and \(recipe.tasks.rankSamples - 1) sampled at temperature 1), graded by the verifier, take the slot of their grade (train, dev and test rankings); constructed responses fill the others." : "Constructed responses only.") In half the training rankings the constructed wrong answer is a decoy, the right answer of another problem of the same kind (so an answer such as "1" is not liked for its own sake); dev and test rankings keep the plausible wrong answers (off by one, another digit of the number).
            Dev pair accuracy \(String(format: "%.1f %%", rewardSummary.heldoutPairAccuracy * 100)), mean margin \(String(format: "%.3f", rewardSummary.heldoutMeanMargin)); rewards shifted so the demonstrations average 0 (offset \(String(format: "%.3f", rewardSummary.rewardMean))). Test accuracy, overall and on right-vs-wrong pairs alone, is in *Test results*.
            """)
        if stopAfter == .reward { return }

        // 5. PPO-ptx.
        stage("PPO-ptx")
        let ppoDirectory = root.appendingPathComponent("ppo")
        var ppo = PPOOptions(policy: sftDirectory, rewardModel: rewardDirectory,
                             prompts: tasksDirectory.appendingPathComponent(InstructionTaskFiles.promptsTrain), output: ppoDirectory)
        ppo.mode = mode
        ppo.settings.steps = recipe.ppo.steps
        if let rlSeed = recipe.rlSeed { ppo.settings.seed = rlSeed }
        ppo.settings.threads = threads
        ppo.settings.precision = precision
        ppo.settings.batchSize = recipe.ppo.batchSize
        ppo.settings.learningRate = recipe.ppo.learningRate
        ppo.settings.minLearningRate = recipe.ppo.learningRate
        ppo.klCoefficient = recipe.ppo.klCoefficient
        ppo.ptxCoefficient = recipe.ppo.ptxCoefficient
        ppo.criticWarmupIterations = recipe.ppo.criticWarmup
        ppo.settings.evalInterval = max(1, recipe.ppo.steps / 3)
        ppo.ptxData = ptxDirectory
        let ppoTrainer = PPOTrainer(options: ppo)
        ppoTrainer.evaluate = { ["dev_accuracy": evaluateDev($0).accuracy] }
        let ppoSummary = try ppoTrainer.run()
        recordDev("ppo", "PPO-ptx", try LlamaModel.load(directory: ppoDirectory))
        trained.append(("ppo", "PPO-ptx", ppoDirectory))
        report.set("ppo", "mean_reward", ppoSummary.meanReward)
        report.set("ppo", "first_mean_reward", ppoSummary.firstMeanReward)
        report.set("ppo", "kl", ppoSummary.kl)
        report.set("ppo", "iterations", ppoSummary.iterations)
        try reportPPO(ppoSummary, directory: ppoDirectory, report)
        if stopAfter == .ppo { return }

        // 6. DPO from the same SFT model.
        stage("DPO")
        let dpoDirectory = root.appendingPathComponent("dpo")
        var dpo = DPOOptions(model: sftDirectory, data: [tasksDirectory.appendingPathComponent(InstructionTaskFiles.preferencesTrain)], output: dpoDirectory)
        dpo.mode = mode
        dpo.settings.steps = recipe.dpo.steps
        if let rlSeed = recipe.rlSeed { dpo.settings.seed = rlSeed }
        dpo.settings.threads = threads
        dpo.settings.precision = precision
        // Plain DPO by default (an NLL term on the chosen answers would be RPO, which also trains
        // on the written answers of the pairs).
        dpo.sftWeight = recipe.dpo.sftWeight
        dpo.beta = recipe.dpo.beta
        dpo.settings.learningRate = recipe.dpo.learningRate
        dpo.settings.minLearningRate = recipe.dpo.minLearningRate
        let dpoSummary = try DPOTrainer(options: dpo).run()
        recordDev("dpo", "DPO", try LlamaModel.load(directory: dpoDirectory))
        trained.append(("dpo", "DPO", dpoDirectory))
        report.set("dpo", "method", dpo.methodName)
        report.set("dpo", "validation_preference_accuracy", dpoSummary.heldout.accuracy)
        report.set("dpo", "validation_reward_margin", dpoSummary.heldout.margin)
        report.section(dpo.methodName, "\(dpo.sftWeight == 0 ? "Plain DPO (α = 0: no NLL term on the chosen answers)" : "RPO: DPO + \(dpo.sftWeight) × NLL of the chosen answers"), β = \(dpo.beta), \(dpoSummary.trainPairs) constructed pairs (reference answer over a wrong or off-format one), reference log-probabilities computed once. Preference accuracy on pairs of held-back training prompts \(String(format: "%.1f %%", dpoSummary.heldout.accuracy * 100)), reward margin \(String(format: "%.3f", dpoSummary.heldout.margin)).")
        if stopAfter == .dpo { return }

        // 7. GRPO from the same SFT model, rewarded by the verifier.
        stage("GRPO")
        let grpoDirectory = root.appendingPathComponent("grpo")
        var grpo = GRPOOptions(model: sftDirectory, prompts: [tasksDirectory.appendingPathComponent(InstructionTaskFiles.promptsTrain)], output: grpoDirectory)
        grpo.mode = mode
        grpo.settings.steps = recipe.grpo.steps
        if let rlSeed = recipe.rlSeed { grpo.settings.seed = rlSeed }
        grpo.settings.threads = threads
        grpo.settings.precision = precision
        grpo.settings.batchSize = recipe.grpo.batchSize
        grpo.groupSize = recipe.grpo.groupSize
        // DAPO's dynamic sampling: groups whose answers are all right (or all wrong) carry no
        // advantage and are replaced by fresh prompts, so every update learns from problems the
        // model gets right only sometimes.
        grpo.dynamicSampling = recipe.grpo.dynamicSampling
        grpo.settings.learningRate = recipe.grpo.learningRate
        grpo.settings.minLearningRate = recipe.grpo.learningRate
        grpo.klBeta = recipe.grpo.klBeta
        let grpoSummary = try GRPOTrainer(options: grpo).run()
        recordDev("grpo", "GRPO", try LlamaModel.load(directory: grpoDirectory))
        trained.append(("grpo", "GRPO", grpoDirectory))
        report.set("grpo", "train_reward_first", grpoSummary.firstMeanReward)
        report.set("grpo", "train_reward_last", grpoSummary.meanReward)
        report.set("grpo", "kl", grpoSummary.kl)
        report.section("GRPO", "Group size \(grpo.groupSize), verifier reward (exact answer), KL β \(grpo.klBeta) to the SFT model, dynamic sampling (groups whose answers all score alike are replaced by fresh prompts, at most \(grpo.maxSamplingRounds) rounds). Mean training reward (verifier, answers sampled at T = 1) \(String(format: "%.3f → %.3f", grpoSummary.firstMeanReward, grpoSummary.meanReward)) over the first and the last \(min(10, grpoSummary.steps)) steps.")
        }

        /// The test split, evaluated once for every model this run made: the headline table.
        func evaluateTest() throws {
            stage("test: \(test.count) problems, every model once")
            var rows: [[String]] = [], results: [String: ExactMatchResult] = [:], differences: [(String, PairedDifference)] = []
            var curveRows: [[String]] = []
            let shotCounts = recipe.evaluation.shots, curveProblems = Array(test.prefix(recipe.evaluation.inContextProblems))
            for (key, label, directory) in trained {
                let model = key == "base" ? baseModel : try LlamaModel.load(directory: directory)
                let result = exactMatchAccuracy(model: model, tokenizer: tokenizer, prompts: test, format: format(key))
                let sampled = key == "base" ? nil : sampledExactMatch(model: model, tokenizer: tokenizer, prompts: test, samples: recipe.evaluation.sampledAnswers, seed: recipe.tasks.seed)
                let textLoss = pretrainingText(model).loss
                logLine(String(format: "%@: test exact match %.3f", label, result.accuracy))
                report.set(key, "test_accuracy", result.accuracy)
                report.set(key, "test_accuracy_by_kind", accuracyByKind(result))
                if let sampled {
                    report.set(key, "test_sampled_accuracy", sampled.accuracy)
                    report.set(key, "test_pass_at_\(recipe.evaluation.sampledAnswers)", sampled.passAt(recipe.evaluation.sampledAnswers))
                }
                report.set(key, "pretraining_text_loss", textLoss)
                let byKind = accuracyByKind(result)
                rows.append([label, String(format: "%.1f %%", result.accuracy * 100), "\(result.correct)/\(result.total)"]
                            + kindNames.map { String(format: "%.1f %%", (byKind[$0] ?? .nan) * 100) }
                            + [sampled.map { String(format: "%.1f %%", $0.accuracy * 100) } ?? "–",
                               sampled.map { String(format: "%.1f %%", $0.passAt($0.samplesPerPrompt) * 100) } ?? "–",
                               String(format: "%.3f", textLoss)])
                results[key] = result
                // In-context learning: the same test problems with 0, 1 and 5 solved training
                // problems first (plain text for the base model, earlier chat turns for the others).
                let curve = inContextEvaluation(model: model, tokenizer: tokenizer, prompts: curveProblems, examples: trainPrompts,
                                                shots: shotCounts, format: key == "base" ? .plain : .chat, seed: recipe.tasks.seed)
                var curveReport: [String: Any] = [:]
                for point in curve {
                    curveReport["\(point.shots)"] = ["exact_match": point.exactMatch, "multiple_choice": point.multipleChoice ?? Double.nan,
                                                     "multiple_choice_norm": point.multipleChoiceNormalized ?? Double.nan]
                }
                report.set(key, "test_in_context", curveReport)
                func percent(_ x: Double?) -> String { x.map { String(format: "%.1f %%", $0 * 100) } ?? "–" }
                curveRows.append([label] + curve.map { percent($0.exactMatch) } + curve.map { percent($0.multipleChoice) })
                if key != "base" && key != "sft", let sft = results["sft"] {
                    let d = result.difference(from: sft, seed: recipe.tasks.seed)
                    differences.append((label, d))
                    report.set(key, "test_accuracy_minus_sft", d.difference)
                    report.set(key, "test_accuracy_minus_sft_ci95", [d.low, d.high])
                }
            }
            var body = "Exact match on \(test.count) test problems (\(taskKinds.map(\.rawValue).joined(separator: ", "))), evaluated once at the end of the run; no setting of the recipe was chosen on them (see *Dev accuracy*). Train, dev and test problems are disjoint up to each kind's symmetries. Greedy decoding; the sampled columns grade \(recipe.evaluation.sampledAnswers) answers per problem at temperature 1 (what the RL stages' rollouts are): the share of right ones, and pass@\(recipe.evaluation.sampledAnswers). The last column is the model's loss (nats per token) on the pretraining validation text, the same \(baseTextTokens) tokens for every model: the alignment tax.\n\n"
            body += markdownTable(["model", "test accuracy", "correct"] + kindNames + ["sampled, T = 1", "pass@\(recipe.evaluation.sampledAnswers)", "pretraining text loss"], rows)
            if !differences.isEmpty {
                body += "\nEach RL model against SFT on the same test problems (paired bootstrap over the problems, 2,000 resamples; an interval that holds 0 does not tell the two apart):\n\n"
                body += markdownTable(["model", "minus SFT", "95 % interval", "only SFT right", "only this model right"], differences.map { label, d in
                    [label, String(format: "%+.1f points", d.difference * 100), String(format: "%+.1f … %+.1f", d.low * 100, d.high * 100), "\(d.onlyBaseline)", "\(d.onlyThis)"]
                })
            }
            body += "\nSample answers to the first test prompts:\n\n"
            var samples: [[String]] = []
            for p in test.prefix(6).indices {
                var row = ["`\(test[p].prompt)`", "`\(test[p].answer ?? "")`"]
                for name in ["base", "sft", "ppo", "dpo", "grpo"] {
                    guard let r = results[name] else { row.append("–"); continue }
                    row.append("\(r.samples[p].correct ? "✓" : "✗") `\(r.samples[p].response)`")
                }
                samples.append(row)
            }
            body += markdownTable(["prompt", "answer", "base", "SFT", "PPO", "DPO", "GRPO"], samples)
            if let rewardDirectory = rewardDirectoryForTest {
                let tasks = InstructionTaskFiles.tasks(for: .rankings, count: recipe.tasks.test, split: .test, seed: recipe.tasks.seed, kinds: taskKinds)
                let rankings = PreferenceDataset.separate(try PreferenceDataset.load(tasksDirectory.appendingPathComponent(InstructionTaskFiles.rankingsTest)).records).rankings
                let accuracy = try rewardRankingAccuracy(rewardDirectory: rewardDirectory, rankings: rankings, answers: tasks.map(\.answer))
                report.set("reward", "test_pair_accuracy", accuracy.all)
                report.set("reward", "test_right_vs_wrong_accuracy", accuracy.rightVersusWrong)
                body += "\n\nReward model on the \(rankings.count) test rankings: pair accuracy **\(String(format: "%.1f %%", accuracy.all * 100))** over all \(accuracy.pairs) ordered pairs (most contrast format or length), **\(String(format: "%.1f %%", accuracy.rightVersusWrong * 100))** on the \(accuracy.rightVersusWrongPairs) pairs of a right and a wrong answer alone (does it tell a right answer from a wrong one?)."
            }
            body += "\n\nIn-context learning on the first \(curveProblems.count) test problems: k = \(shotCounts.map(String.init).joined(separator: ", ")) solved training problems shown first (drawn per problem, the same ones at every k; plain Question/Answer text for the base model, earlier chat turns for the others). Exact match is the greedy answer; multiple choice picks the candidate (the answer and the task's plausible wrong answers) with the highest log-likelihood, as the few-shot benchmarks of the GPT-3 paper and lm-evaluation-harness do. What pretraining alone gives is the base row; what each stage adds is the rows below it.\n\n"
            body += markdownTable(["model"] + shotCounts.map { "exact match, k = \($0)" } + shotCounts.map { "multiple choice, k = \($0)" }, curveRows)
            report.replaceSection("Test results", body)
        }
        try runStages()
        if evaluatesTest {
            try evaluateTest()
        } else {
            logLine("\n(--dev-only: no model was evaluated on the test split)")
            report.set("recipe", "dev_only", true)
            report.section("Test results", "Not measured: this run chose settings (`--dev-only`), so its models were evaluated on the dev split only.")
        }
        return report
    }

    /// Pair accuracy of the reward model in `rewardDirectory` on `rankings` (every ordered pair
    /// of each ranking: the better one should score higher), and on the pairs of a right and a
    /// wrong answer alone (`answers[i]` is the right answer of ranking i; right is
    /// `InstructionTasks.verify`).
    func rewardRankingAccuracy(rewardDirectory: URL, rankings: [RankedResponses], answers: [String]) throws
        -> (all: Double, pairs: Int, rightVersusWrong: Double, rightVersusWrongPairs: Int) {
        precondition(rankings.count == answers.count, "one answer per ranking")
        let scorer = try RewardModel.load(directory: rewardDirectory)
        let tokenizer = try ByteLevelBPETokenizer(contentsOf: rewardDirectory.appendingPathComponent("tokenizer.json"))
        let encoder = ChatEncoder(tokenizer: tokenizer)
        var prompts: [[Int32]] = [], responses: [[Int32]] = []
        for ranking in rankings {
            let prompt = encoder.prompt(ranking.prompt)   // once per ranking, shared by its K responses
            for response in ranking.responses { prompts.append(prompt); responses.append(encoder.response(response)) }
        }
        let scores = scorer.rawScores(prompts: prompts, responses: responses, padID: Int32(tokenizer.padID ?? tokenizer.endOfTextID),
                                      maxLength: scorer.model.configuration.maxPositionEmbeddings)
        var offset = 0, right = 0, total = 0, rwRight = 0, rwTotal = 0
        for (ranking, answer) in zip(rankings, answers) {
            for (a, better) in ranking.ranking.enumerated() {
                for worse in ranking.ranking[(a + 1)...] {
                    let won = scores[offset + better] > scores[offset + worse]
                    total += 1; if won { right += 1 }
                    let betterRight = InstructionTasks.verify(response: ranking.responses[better], answer: answer)
                    let worseRight = InstructionTasks.verify(response: ranking.responses[worse], answer: answer)
                    if betterRight && !worseRight { rwTotal += 1; if won { rwRight += 1 } }
                }
            }
            offset += ranking.responses.count
        }
        return (Double(right) / Double(max(total, 1)), total, Double(rwRight) / Double(max(rwTotal, 1)), rwTotal)
    }

    /// Pretraining text made of training problems as plain question–answer worksheets (ten
    /// per document), so the base model has seen the tasks' language before SFT. Held-out
    /// problems never appear: the generator's split is decided by the problem itself.
    func writeWorksheets(to url: URL, documents: Int, kinds: [InstructionTaskKind]) throws {
        let tasks = InstructionTasks.generate(kinds: kinds, count: documents * 10, seed: recipe.tasks.seed &+ 99, split: .train)
        var lines: [String] = []
        for start in stride(from: 0, to: tasks.count, by: 10) {
            let text = tasks[start..<min(start + 10, tasks.count)].map { "Question: \($0.prompt)\nAnswer: \($0.answer)\n" }.joined(separator: "\n")
            let data = try JSONSerialization.data(withJSONObject: ["text": text, "source": "constructed: InstructionTasks worksheet (train split)"], options: [.sortedKeys])
            lines.append(String(decoding: data, as: UTF8.self))
        }
        try AtomicFile.write(Data((lines.joined(separator: "\n") + "\n").utf8), to: url)
    }

    func reportData(_ m: Manifest, _ report: PipelineReport) {
        report.set("data", "documents_read", m.documentsRead)
        report.set("data", "documents_kept", m.documentsKept)
        report.set("data", "removed", m.removed)
        report.set("data", "train_tokens", m.splits["train"]?.tokens ?? 0)
        report.set("data", "val_tokens", m.splits["val"]?.tokens ?? 0)
        report.section("Data", markdownTable(["", "value"], [
            ["sources", "\(m.sources.count) files"],
            ["documents read / kept", "\(m.documentsRead) / \(m.documentsKept)"],
            ["removed", m.removed.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")],
            ["boilerplate lines removed", "\(m.cleaning.boilerplateLinesRemoved)"],
            ["train tokens", "\(m.splits["train"]?.tokens ?? 0) (\(m.splits["train"]?.bytes ?? 0) bytes)"],
            ["validation tokens", "\(m.splits["val"]?.tokens ?? 0) (\(m.splits["val"]?.bytes ?? 0) bytes)"],
            ["tokenizer", "byte-level BPE, \(m.vocabSize) tokens"],
        ]))
    }

    func reportPretraining(_ pretrain: PretrainSummary, directory: URL, _ report: PipelineReport) throws {
        let metrics = MetricsLog.read(directory.appendingPathComponent("metrics.jsonl"))
        let trainCurve = curve(metrics, "loss"), valCurve = curve(metrics, "val_loss")
        let lossChart = try report.chart("pretrain_loss", LineChart(
            title: "Pretraining loss", xLabel: "step", yLabel: "cross-entropy (nats)",
            series: [.init(name: "train", points: trainCurve, color: "#1f77b4"), .init(name: "validation", points: valCurve, color: "#d62728")]))
        report.set("pretrain", "steps", pretrain.steps)
        report.set("pretrain", "parameters", pretrain.parameters)
        report.set("pretrain", "train_loss", pretrain.finalTrainLoss)
        report.set("pretrain", "val_loss", pretrain.validation?.loss ?? Double.nan)
        report.set("pretrain", "val_bpb", pretrain.validation?.bitsPerByte ?? Double.nan)
        report.set("pretrain", "tokens_per_second", pretrain.tokensPerSecond)
        report.set("pretrain", "seconds", pretrain.seconds)
        report.set("pretrain", "precision", precision.rawValue)
        report.section("Pretraining", """
            \(pretrain.parameters) parameters, \(pretrain.steps) steps, \(String(format: "%.0f", pretrain.tokensPerSecond)) tokens/s on \(threads) thread(s)\(precision == .bf16 ? " with bf16 matrix products" : ""), \(String(format: "%.0f", pretrain.seconds)) s.

            \(markdownTable(["final train loss", "validation loss", "validation bits/byte"],
                            [[String(format: "%.4f", pretrain.finalTrainLoss), String(format: "%.4f", pretrain.validation?.loss ?? .nan),
                              String(format: "%.4f", pretrain.validation?.bitsPerByte ?? .nan)]]))
            Train loss: `\(sparkline(trainCurve.map(\.y)))`

            \(lossChart)
            """)
    }

    func reportSamples(_ model: LlamaModel, _ tokenizer: ByteLevelBPETokenizer, _ report: PipelineReport) throws {
        let generator = Generator(model: model, stopTokens: [Int32(tokenizer.endOfTextID)])
        var rows: [[String]] = [], samples: [[String: String]] = []
        for (i, prompt) in ["ROMEO:", "And Jesus said unto them,", "The Python interpreter", "床前明月光，"].enumerated() {
            let ids = tokenizer.encode(prompt).map(Int32.init)
            let result = generator.generate(prompt: ids, maxTokens: 48, sampling: SamplingParameters(temperature: 0.8, topK: 50, topP: 0.95, seed: UInt64(i)))
            let text = tokenizer.decode(result.tokens.map(Int.init))
            rows.append(["`\(prompt)`", text])
            samples.append(["prompt": prompt, "completion": text])
            logLine("  \(prompt)\(text.replacingOccurrences(of: "\n", with: " ⏎ "))")
        }
        report.figures["pretrain", default: [:]]["samples"] = samples
        report.section("Samples from the base model (temperature 0.8, top-k 50, top-p 0.95)", markdownTable(["prompt", "completion"], rows))
    }

    func reportPPO(_ summary: PPOSummary, directory: URL, _ report: PipelineReport) throws {
        let metrics = MetricsLog.read(directory.appendingPathComponent("metrics.jsonl"))
        let rewardChart = try report.chart("ppo_reward", LineChart(
            title: "PPO: mean reward-model score of rollouts", xLabel: "iteration", yLabel: "reward",
            series: [.init(name: "reward", points: curve(metrics, "reward"), color: "#2ca02c")]))
        let klChart = try report.chart("ppo_kl", LineChart(
            title: "PPO: KL(policy ‖ SFT) per answer", xLabel: "iteration", yLabel: "nats",
            series: [.init(name: "KL", points: curve(metrics, "kl"), color: "#9467bd")]))
        let last = metrics.last ?? [:]
        func value(_ key: String) -> String { (last[key] as? Double).map { String(format: "%.3f", $0) } ?? "–" }
        report.section("PPO-ptx", """
            \(summary.iterations) iterations (the first \(recipe.ppo.criticWarmup) fit only the critic). Mean reward-model score of the rollouts \(String(format: "%.3f → %.3f", summary.firstMeanReward, summary.meanReward)) over the first and the last 10 iterations, KL to the SFT model \(String(format: "%.3f", summary.kl)) nats per answer.
            Last iteration: entropy \(value("entropy")), response length \(value("response_length")), clip fraction \(value("clip_fraction")), value loss \(value("value_loss")), explained variance \(value("explained_variance")), SFT perplexity of the answers \(value("sft_perplexity")), pretraining loss \(value("ptx_loss")).

            \(rewardChart)

            \(klChart)
            """)
    }

    func curve(_ metrics: [[String: Any]], _ key: String) -> [(x: Double, y: Double)] {
        metrics.compactMap { r in
            guard let s = r["step"] as? Int, let v = r[key] as? Double else { return nil }
            return (Double(s), v)
        }
    }
}
