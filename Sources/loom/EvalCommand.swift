import ArgumentParser
import Foundation
import LoomSupport
import LoomData
import LoomEval
import LoomInference
import LoomTokenizer
import LoomTrain

extension InContextFormat: ExpressibleByArgument {}

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Evaluate a model: exact-match accuracy on prompts with answers, or perplexity and bits per byte on token shards.",
        discussion: """
        loom eval --model runs/sft --task exact-match --prompts runs/tasks/prompts_dev.jsonl
        loom eval --model runs/base --task exact-match --prompts runs/tasks/prompts_dev.jsonl --few-shot runs/tasks/prompts_train.jsonl
        loom eval --model runs/base --task in-context --prompts runs/tasks/prompts_dev.jsonl --few-shot runs/tasks/prompts_train.jsonl --shot-counts 0,1,5
        loom eval --model runs/base --task perplexity --data runs/data
        Prints one JSON object on stdout.
        """)

    enum Task: String, ExpressibleByArgument, CaseIterable { case exactMatch = "exact-match", inContext = "in-context", perplexity }

    @Option(help: "Model directory.") var model: String
    @Option(help: "exact-match, in-context (k-shot exact match and multiple choice for each k of --shot-counts) or perplexity.") var task: Task
    @Option(help: "in-context: the numbers of in-context examples, drawn per prompt from --few-shot (comma-separated).") var shotCounts: String = "0,1,5"
    @Option(help: "in-context: plain (Question/Answer text, base models) or chat (examples as earlier turns, chat models).") var format: InContextFormat = .plain
    @Option(help: "Prompts JSONL with answers (exact-match).") var prompts: String?
    @Option(help: "Prompts JSONL with answers to use as in-context examples (base models); chat format when unset.") var fewShot: String?
    @Option(help: "Number of in-context examples.") var shots: Int = 5
    @Option(help: "Token shards from `loom prepare` (perplexity).") var data: String?
    @Option(help: "Context length for perplexity.") var context: Int = 256
    @Option(help: "Maximum answer tokens.") var maxTokens: Int = 16
    @Option(help: "Evaluate at most this many prompts.") var limit: Int?
    @Option(help: "Threads.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    @Option(help: "Also report the accuracy of N answers per prompt sampled at temperature 1, and pass@N, the share of prompts with a right one among them (chat format; 0 = greedy only).") var sampled: Int = 0
    @Option(help: "Seed of the sampled answers.") var seed: UInt64 = 0
    @Flag(help: "Print every prompt, answer and response to stderr.") var verbose = false
    @Option(help: "exact-match, in-context: write the graded greedy answers here, one JSON line each (in-context: tagged with their k).") var answersOut: String?
    @Option(help: "exact-match: an earlier --answers-out file on the same prompts; reports this model's accuracy minus that one's with a paired bootstrap 95 % interval.") var pairedWith: String?
    @Option(help: "The k of --paired-with's answers when that file comes from --task in-context.") var pairedShots: Int?
    @Flag(help: "in-context: greedy exact match only, without the multiple-choice scoring (a forward pass per candidate).") var noMultipleChoice = false

    func validate() throws {
        try checkNumericFlags()
        guard sampled >= 0 else { throw ValidationError("--sampled must not be negative, got \(sampled)") }
        if pairedWith != nil, task != .exactMatch { throw ValidationError("--paired-with compares exact-match answers; use it with --task exact-match") }
        if pairedShots != nil, pairedWith == nil { throw ValidationError("--paired-shots needs --paired-with") }
        if let pairedShots, pairedShots < 0 { throw ValidationError("--paired-shots must not be negative, got \(pairedShots)") }
        if answersOut != nil, task == .perplexity { throw ValidationError("--answers-out needs --task exact-match or in-context") }
        if task == .inContext {
            _ = try parsedShotCounts()
        }
    }

    func parsedShotCounts() throws -> [Int] {
        let counts = shotCounts.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !counts.isEmpty, counts.allSatisfy({ ($0 ?? -1) >= 0 }) else {
            throw ValidationError("--shot-counts must be non-negative integers separated by commas, got \(shotCounts)")
        }
        return counts.map { $0! }
    }

    func run() throws {
        Threading.configure(threads: threads)
        let (model, tokenizer) = try loadModelAndTokenizer(model)
        // Exact match prompts in chat turns unless it is given few-shot examples; in-context too
        // with --format chat.
        if (task == .exactMatch && fewShot == nil) || (task == .inContext && format == .chat) {
            try tokenizer.chatTemplate.checkRenderable(file: self.model)
        }
        switch task {
        case .exactMatch:
            guard let prompts else { throw ValidationError("--task exact-match needs --prompts FILE") }
            var examples = try PromptDataset.load(URL(fileURLWithPath: prompts)).examples.filter { $0.answer != nil }
            if let limit { examples = Array(examples.prefix(limit)) }
            var format = PromptFormat.chat
            if let fewShot {
                format = .fewShot(Array(try PromptDataset.load(URL(fileURLWithPath: fewShot)).examples.filter { $0.answer != nil }.prefix(shots)))
            }
            let result = exactMatchAccuracy(model: model, tokenizer: tokenizer, prompts: examples, format: format, maxTokens: maxTokens)
            if verbose {
                for s in result.samples { logLine("\(s.correct ? "✓" : "✗") \(s.prompt) → \(s.response.debugDescription) (answer \(s.answer))") }
            }
            var line = "{\"task\": \"exact-match\", \"accuracy\": \(result.accuracy), \"correct\": \(result.correct), \"total\": \(result.total)"
            if sampled > 0 {
                guard fewShot == nil else { throw ValidationError("--sampled uses the chat format; drop --few-shot") }
                let graded = sampledExactMatch(model: model, tokenizer: tokenizer, prompts: examples, samples: sampled, seed: seed, maxTokens: maxTokens)
                if verbose {
                    for (example, right) in zip(examples, graded.correct) { logLine("\(right)/\(sampled) sampled right: \(example.prompt) (answer \(example.answer ?? ""))") }
                }
                line += ", \"sampled_accuracy\": \(graded.accuracy), \"samples_per_prompt\": \(sampled), \"pass_at_\(sampled)\": \(graded.passAt(sampled))"
            }
            if let answersOut { try writeAnswers(AnswerFile.lines(result), to: answersOut) }
            if let pairedWith {
                let baseline = try AnswerFile.read(URL(fileURLWithPath: pairedWith), shots: pairedShots)
                let paired = try AnswerFile.pairedDifference(result, baseline: baseline, baselineName: pairedWith)
                line += ", \"paired\": {\"baseline\": \(JSONString.quoted(pairedWith)), \"baseline_accuracy\": \(baseline.accuracy), \"minus_baseline\": \(paired.difference), \"ci95\": [\(paired.low), \(paired.high)], \"only_baseline\": \(paired.onlyBaseline), \"only_this\": \(paired.onlyThis)}"
            }
            try StandardOutput.writeLine(line + "}")
        case .inContext:
            guard let prompts else { throw ValidationError("--task in-context needs --prompts FILE") }
            guard let fewShot else { throw ValidationError("--task in-context needs --few-shot FILE (the examples, e.g. training prompts)") }
            var examples = try PromptDataset.load(URL(fileURLWithPath: prompts)).examples.filter { $0.answer != nil }
            if let limit { examples = Array(examples.prefix(limit)) }
            let pool = try PromptDataset.load(URL(fileURLWithPath: fewShot)).examples.filter { $0.answer != nil }
            let counts = try parsedShotCounts()
            guard pool.count > counts.max()! else {
                throw ValidationError("--few-shot \(fewShot) holds \(pool.count) examples with answers; --shot-counts asks for up to \(counts.max()!)")
            }
            let results = inContextEvaluation(model: model, tokenizer: tokenizer, prompts: examples, examples: pool, shots: counts,
                                              format: format, seed: seed, maxTokens: maxTokens, multipleChoice: !noMultipleChoice)
            if let answersOut { try writeAnswers(results.flatMap { try AnswerFile.lines($0.greedy, shots: $0.shots) }, to: answersOut) }
            func number(_ x: Double?) -> String { x.map { "\($0)" } ?? "null" }
            let rows = results.map { "{\"shots\": \($0.shots), \"exact_match\": \($0.exactMatch), \"multiple_choice\": \(number($0.multipleChoice)), \"multiple_choice_norm\": \(number($0.multipleChoiceNormalized)), \"prompts\": \($0.prompts)}" }
            try StandardOutput.writeLine("{\"task\": \"in-context\", \"format\": \"\(format.rawValue)\", \"results\": [\(rows.joined(separator: ", "))]}")
        case .perplexity:
            guard let data else { throw ValidationError("--task perplexity needs --data DIR") }
            let dataset = try TokenDataset(directory: URL(fileURLWithPath: data), split: "val")
            try dataset.checkTokens(below: model.configuration.vocabularySize)
            let ctx = min(context, model.configuration.maxPositionEmbeddings)
            guard dataset.count > ctx + 1 else {
                throw TrainingError("\(data): the val split holds \(dataset.count) tokens; perplexity with a context of \(ctx) needs more than \(ctx + 1)")
            }
            let r = evaluateLanguageModel(model: model, dataset: dataset, tokenizer: tokenizer, batch: 8, context: ctx, batches: 8)
            try StandardOutput.writeLine("{\"task\": \"perplexity\", \"loss\": \(r.loss), \"perplexity\": \(Foundation.exp(r.loss)), \"bits_per_byte\": \(r.bitsPerByte), \"tokens\": \(r.tokens)}")
        }
    }

    private func writeAnswers(_ lines: [String], to path: String) throws {
        do { try AtomicFile.write(Data((lines.joined(separator: "\n") + "\n").utf8), to: URL(fileURLWithPath: path)) } catch {
            throw ValidationError("--answers-out \(path): cannot write (\(error.localizedDescription))")
        }
    }
}
