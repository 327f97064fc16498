import ArgumentParser
import Foundation
import LoomData
import LoomEval
import LoomInference
import LoomTokenizer
import LoomTrain

struct DPOCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dpo",
        abstract: "Direct Preference Optimization (or IPO) from an SFT model on preference pairs and rankings.",
        discussion: """
        The reference is the --model itself, frozen: its log-probs of every pair are computed once before \
        training. Rankings become pairs (--ranking-pairs all: the C(K,2) pairs; best-worst: one). \
        --self-rejected PROMPTS adds on-policy pairs: for each prompt with an answer, the reference answer \
        over the model's own wrong answers (greedy and --self-rejected-samples sampled ones). \
        --heldout PROMPTS reports exact-match accuracy before, during and after training.
        """)

    @Option(help: "SFT model directory (policy start and frozen reference).") var model: String
    @Option(help: "Preference data (JSONL pairs {prompt, chosen, rejected} and/or rankings {prompt, responses, ranking}); repeatable.")
    var data: [String] = []
    @Option(help: "Output model directory.") var out: String
    @Option(help: "β: strength of the pull toward the reference.") var beta: Float?
    @Option(help: "Loss: sigmoid (DPO) or ipo.") var loss: DPOKind = .sigmoid
    @Option(help: "Label smoothing ε of the sigmoid loss (conservative DPO).") var labelSmoothing: Float = 0
    @Option(help: "Weight α of an NLL term on chosen responses: α > 0 is RPO (TRL's rpo_alpha), not plain DPO. Default 0: plain DPO.") var sftWeight: Float?
    @Option(help: "Pairs from a ranking: all (the C(K,2) pairs) or best-worst (one).") var rankingPairs: RankingPairs = .all
    @Option(help: "Prompts with answers for the model's own wrong answers as rejected responses (JSONL {prompt, answer}).")
    var selfRejected: String?
    @Option(help: "Sampled answers per prompt for --self-rejected (besides the greedy one).") var selfRejectedSamples: Int = 3
    @Option(help: "Use at most this many prompts of --self-rejected.") var selfRejectedLimit: Int?
    @Option(help: "Held-out prompts with answers: exact-match accuracy (greedy, chat format).") var heldout: String?
    @Option(help: "Held-out preference files for preference accuracy (default: hold out --val-fraction of the training prompts).")
    var heldoutPreferences: [String] = []
    @Option(help: "Fraction of training prompts held out for preference accuracy when no --heldout-preferences is given.")
    var valFraction: Double = 0.05
    @Option(help: "Longest prompt + response in tokens (default: the model's context).") var maxLength: Int?
    @Flag(help: "Skip malformed JSONL lines (counted) instead of failing.") var skipBadLines = false
    @OptionGroup var stage: StageFlags

    func validate() throws {
        try checkNumericFlags()
        guard !data.isEmpty || selfRejected != nil else { throw ValidationError("give --data and/or --self-rejected") }
        guard selfRejectedSamples >= 0 else { throw ValidationError("--self-rejected-samples must not be negative") }
    }

    func run() throws {
        var options = DPOOptions(model: URL(fileURLWithPath: model), data: data.map { URL(fileURLWithPath: $0) }, output: URL(fileURLWithPath: out))
        stage.apply(to: &options.settings)
        if let beta { options.beta = beta }
        options.kind = loss
        options.labelSmoothing = labelSmoothing
        if let sftWeight { options.sftWeight = sftWeight }
        options.rankingPairs = rankingPairs
        options.heldoutPreferences = heldoutPreferences.map { URL(fileURLWithPath: $0) }
        options.validationFraction = valFraction
        options.maxLength = maxLength
        options.skipBadLines = skipBadLines
        options.mode = stage.mode
        options.allowChanges = stage.allowChanges
        if let selfRejected {
            // Rebuilt on --resume too: the same model and seed give the same pairs.
            let started = Date()
            options.extraPairs = try selfRejectedPairs(model: options.model, prompts: URL(fileURLWithPath: selfRejected),
                                                       samples: selfRejectedSamples, limit: selfRejectedLimit,
                                                       seed: options.settings.seed, skipBadLines: skipBadLines)
            logLine(String(format: "DPO: %d self-rejected pairs from %@ in %.0f s", options.extraPairs.count, selfRejected, Date().timeIntervalSince(started)))
        }
        let evaluate = try heldoutExactMatch(model: options.model, heldout: heldout)
        let summary = try DPOTrainer(options: options, evaluate: evaluate).run()
        var line = String(format: "DPO done: %d steps in %.0f s; held-out preference accuracy %.3f, margin %.3f (%d pairs)",
                          summary.steps, summary.seconds, summary.heldout.accuracy, summary.heldout.margin, summary.heldout.pairs)
        if let before = summary.initialEvaluation["exact_match"], let after = summary.finalEvaluation["exact_match"] {
            line += String(format: "; exact match %.3f → %.3f", before, after)
        }
        logLine(line + "; model in \(out)")
    }
}

/// A held-out exact-match evaluation (greedy, chat format) for a stage's `evaluate` hook, or
/// nil without a prompt file. Logged as `exact_match`, and `exact_match/KIND` per task kind
/// named in the prompts' `source`.
func heldoutExactMatch(model: URL, heldout: String?, maxTokens: Int = 16) throws -> ((LlamaModel) throws -> [String: Double])? {
    guard let heldout else { return nil }
    let url = URL(fileURLWithPath: heldout)
    let prompts = try PromptDataset.load(url).examples
    if let missing = prompts.firstIndex(where: { $0.answer == nil }) {
        throw ValidationError("\(heldout): prompt \(missing + 1) has no \"answer\"; held-out evaluation needs answers")
    }
    let tokenizer = try ByteLevelBPETokenizer(contentsOf: model.appendingPathComponent("tokenizer.json"))
    // Per task kind too, from sources such as "constructed: InstructionTasks arithmetic (heldout)".
    let kinds = prompts.map { InstructionTask.kind(ofSource: $0.source)?.rawValue }
    return { policy in
        let result = exactMatchAccuracy(model: policy, tokenizer: tokenizer, prompts: prompts, format: .chat, maxTokens: maxTokens)
        var values = ["exact_match": result.accuracy]
        for (kind, accuracy) in result.accuracyByGroup(kinds) { values["exact_match/\(kind)"] = accuracy }
        return values
    }
}

/// On-policy preference pairs: for each prompt with an answer, the reference answer (chosen)
/// over each distinct wrong answer of the model (rejected): its greedy answer and `samples`
/// answers sampled at temperature 1 (seeded). Prompts the model always answers right give no pair.
func selfRejectedPairs(model directory: URL, prompts url: URL, samples: Int, limit: Int?, seed: UInt64,
                       skipBadLines: Bool = false, maxTokens: Int = 16, batchSize: Int = 64) throws -> [PreferencePair] {
    var prompts = try PromptDataset.load(url, skipBadLines: skipBadLines).examples.filter { $0.answer != nil }
    if let limit { prompts = Array(prompts.prefix(limit)) }
    let (model, tokenizer) = try ModelDirectory.load(directory, heads: .languageModel)
    let answers = sampleAnswers(model: model, tokenizer: tokenizer, prompts: prompts.map(\.prompt), samples: samples, seed: seed,
                                maxTokens: maxTokens, batchSize: batchSize)
    var pairs: [PreferencePair] = []
    for (p, example) in prompts.enumerated() {
        var seen = Set<String>()
        for answer in answers[p] where !InstructionTasks.verify(response: answer, answer: example.answer!) {
            let text = answer.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !text.isEmpty, seen.insert(text).inserted else { continue }
            pairs.append(PreferencePair(prompt: example.prompt, chosen: example.answer!, rejected: text,
                                        source: "self-rejected: reference answer over the model's own wrong answer"))
        }
    }
    return pairs
}
