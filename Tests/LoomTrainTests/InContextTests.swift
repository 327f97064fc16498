import XCTest
import Foundation
import LoomData
import LoomEval
import LoomTokenizer
import LoomTensor
@testable import LoomTrain

/// k-shot evaluation: multiple choice picks the candidate with the highest log-likelihood
/// (checked against each candidate scored on its own), zero-shot exact match is the plain
/// exact match, and prompts' choices are validated when loaded.
final class InContextTests: XCTestCase {
    func testMultipleChoiceIsTheMostLikelyCandidate() throws {
        let directory = try AlignmentTestModel.make(seed: 4, standardDeviation: 0.3)
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = try LlamaModel.load(directory: directory)
        let tokenizer = try ByteLevelBPETokenizer(contentsOf: directory.appendingPathComponent("tokenizer.json"))
        let prompts = (0..<9).map { PromptExample(prompt: "what is \($0) plus one?", answer: "yes", choices: ["yes", "no", "red or blue"]) }
        let pool = (10..<20).map { PromptExample(prompt: "what is \($0) plus one?", answer: $0 % 2 == 0 ? "yes" : "no") }
        for format in InContextFormat.allCases {
            let curve = inContextEvaluation(model: model, tokenizer: tokenizer, prompts: prompts, examples: pool, shots: [0, 2], format: format,
                                            seed: 3, batchSize: 4)
            XCTAssertEqual(curve.map(\.shots), [0, 2])
            // k = 0: every candidate scored alone, unbatched and unpadded.
            let encoder = ChatEncoder(tokenizer: tokenizer)
            var right = 0
            for prompt in prompts {
                let context: [Int32] = format == .plain
                    ? tokenizer.encode("Question: \(prompt.prompt)\nAnswer:", allowSpecialTokens: false).map(Int32.init)
                    : encoder.prompt(prompt.prompt)
                let scores = prompt.choices!.map { choice -> Float in
                    let continuation = format == .plain ? tokenizer.encode(" " + choice, allowSpecialTokens: false).map(Int32.init) : encoder.response(choice)
                    return PromptResponseBatch(prompts: [context], responses: [continuation], padID: 0, maxLength: 64).sequenceLogProbs(model)[0]
                }
                if prompt.choices![scores.indices.max { scores[$0] < scores[$1] }!] == prompt.answer { right += 1 }
            }
            XCTAssertEqual(curve[0].multipleChoice, Double(right) / Double(prompts.count), "\(format)")
            XCTAssertEqual(curve[0].multipleChoicePrompts, prompts.count)
            // k = 0 exact match is the exact match of the same format without examples.
            let plain = exactMatchAccuracy(model: model, tokenizer: tokenizer, prompts: prompts, format: format == .plain ? .fewShot([]) : .chat)
            XCTAssertEqual(curve[0].exactMatch, plain.accuracy, "\(format)")
        }
    }

    /// The shared-prefill scoring equals each (context, continuation) pair scored on its own,
    /// batch boundaries anywhere (3 rows a batch splits prompts of 1 to 4 candidates), single-token
    /// continuations, and contexts longer than the model's 64 positions (cut at the front).
    func testSharedPrefillScoresEqualEachPairScoredAlone() throws {
        let directory = try AlignmentTestModel.make(seed: 5, standardDeviation: 0.3)
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = try LlamaModel.load(directory: directory)
        var rng = SeededRandom(seed: 9)
        let vocabulary = Int32(model.configuration.vocabularySize)
        func tokens(_ n: Int) -> [Int32] { (0..<n).map { _ in Int32.random(in: 0..<vocabulary, using: &rng) } }
        let contexts = [tokens(5), tokens(1), tokens(30), tokens(90), tokens(12)]
        let continuations = [[tokens(1), tokens(3)], [tokens(2)], [tokens(4), tokens(1), tokens(2), tokens(5)], [tokens(3), tokens(6)], [tokens(1), tokens(1), tokens(2)]]
        for rowsPerBatch in [3, 32] {
            let shared = continuationLogLikelihoods(model: model, contexts: contexts, continuations: continuations, rowsPerBatch: rowsPerBatch)
            XCTAssertEqual(shared.map(\.count), continuations.map(\.count))
            for (c, options) in continuations.enumerated() {
                for (o, option) in options.enumerated() {
                    // PromptResponseBatch cuts the context to fit this continuation; the shared
                    // prefill cuts it to fit the longest of its prompt's continuations.
                    let longest = options.map(\.count).max()!
                    let context = Array(contexts[c].suffix(64 - longest))
                    let alone = PromptResponseBatch(prompts: [context], responses: [option], padID: 0, maxLength: 64).sequenceLogProbs(model)[0]
                    XCTAssertEqual(shared[c][o], alone, accuracy: 1e-4 * max(1, abs(alone)), "context \(c), continuation \(o), rows \(rowsPerBatch)")
                }
            }
        }
    }

    func testChoicesMustHoldTheAnswer() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("loom-choices-\(UUID()).jsonl")
        defer { try? FileManager.default.removeItem(at: url) }
        try #"{"prompt": "2 + 2?", "answer": "4", "choices": ["4", "5"]}"#.write(to: url, atomically: true, encoding: .utf8)
        XCTAssertEqual(try PromptDataset.load(url).examples[0].choices, ["4", "5"])
        try "{\"prompt\": \"2 + 2?\", \"answer\": \"4\", \"choices\": [\"5\", \"6\"]}\n".write(to: url, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try PromptDataset.load(url)) { error in
            XCTAssertTrue("\(error)".contains("\(url.lastPathComponent):1:") && "\(error)".contains("choices"), "\(error)")
        }
        // The task files carry the answer and the plausible wrong answers as choices.
        let task = InstructionTasks.generate(kind: .compareNumbers, count: 1, seed: 1, split: .test)[0]
        XCTAssertEqual(task.promptExample.choices?.first, task.answer)
        XCTAssertGreaterThanOrEqual(task.promptExample.choices?.count ?? 0, 2)
    }
}
