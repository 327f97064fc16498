import XCTest
import Foundation
import LoomData
import LoomTensor
import LoomTokenizer
@testable import LoomTrain

/// SFT's batching: length-grouped batches cover each epoch like random ones, never interleave
/// lengths within a mega-batch, and a grouped run learns and resumes exactly.
final class SFTTests: XCTestCase {
    func testLengthGroupedBatchesPartitionTheEpochBySortedLength() {
        var rng = SeededRandom(seed: 3)
        let lengths = (0..<103).map { _ in Int.random(in: 5...300, using: &rng) }
        let batchSize = 8, perEpoch = 103 / 8
        for epoch in 0..<2 {
            let batches = (0..<perEpoch).map { lengthGroupedBatchIndices(step: epoch * perEpoch + $0, lengths: lengths, batchSize: batchSize, seed: 11) }
            XCTAssertTrue(batches.allSatisfy { $0.count == batchSize })
            // Every example at most once per epoch; all but 103 mod 8 of them.
            let all = batches.flatMap { $0 }
            XCTAssertEqual(Set(all).count, all.count)
            XCTAssertEqual(all.count, perEpoch * batchSize)
            // One mega-batch holds the whole epoch here, so batches are runs of the sorted
            // lengths: any two batches' length ranges do not overlap.
            let ranges = batches.map { b in (b.map { lengths[$0] }.min()!, b.map { lengths[$0] }.max()!) }
            for i in ranges.indices { for j in ranges.indices where i != j {
                XCTAssertTrue(ranges[i].1 <= ranges[j].0 || ranges[j].1 <= ranges[i].0, "batches \(i) and \(j) interleave: \(ranges[i]) \(ranges[j])")
            } }
            // Padding to the longest of each batch costs far less than with random batches.
            let grouped = batches.map { b in b.map { lengths[$0] }.max()! * b.count }.reduce(0, +)
            let random = (0..<perEpoch).map { step in
                let b = epochBatchIndices(step: epoch * perEpoch + step, count: lengths.count, batchSize: batchSize, seed: 11)
                return b.map { lengths[$0] }.max()! * b.count
            }.reduce(0, +)
            XCTAssertLessThan(Double(grouped), 0.75 * Double(random))
        }
        // A function of the step alone, and another epoch is another order.
        XCTAssertEqual(lengthGroupedBatchIndices(step: 5, lengths: lengths, batchSize: 8, seed: 11),
                       lengthGroupedBatchIndices(step: 5, lengths: lengths, batchSize: 8, seed: 11))
        XCTAssertNotEqual(lengthGroupedBatchIndices(step: 5, lengths: lengths, batchSize: 8, seed: 11),
                          lengthGroupedBatchIndices(step: 5 + perEpoch, lengths: lengths, batchSize: 8, seed: 11))
        // Small mega-batches: batches still hold distinct examples, all within one epoch's order.
        let small = (0..<perEpoch).flatMap { lengthGroupedBatchIndices(step: $0, lengths: lengths, batchSize: 8, seed: 11, megaBatch: 2) }
        XCTAssertEqual(Set(small).count, small.count)
    }

    /// Batches of 4 at a constant learning rate of 1e-2 (so a run stopped and resumed follows the
    /// same schedule), no periodic evaluation, one thread.
    static func quickOptions(model: URL, data: [URL], output: URL, steps: Int, checkpointInterval: Int, resume: Bool) -> SFTOptions {
        var o = SFTOptions(model: model, data: data, output: output)
        o.resume = resume
        o.settings.steps = steps
        o.settings.batchSize = 4
        o.settings.learningRate = 1e-2
        o.settings.minLearningRate = 1e-2
        o.settings.warmupSteps = 0
        o.settings.evalInterval = 0
        o.settings.checkpointInterval = checkpointInterval
        o.settings.logInterval = 1000
        o.settings.threads = 1
        return o
    }

    func testGroupedSFTLearnsAndResumesExactly() throws {
        let model = try AlignmentTestModel.make()
        // Short answers to short prompts, and a few long prompts (the ones that would pad every batch).
        let examples = (0..<24).map { i -> SFTExample in
            let question = i % 6 == 0 ? String(repeating: "question \(i): what is \(i) plus one? ", count: 4) : "question \(i): what is \(i) plus one?"
            return SFTExample(messages: [ChatMessage(role: "user", content: question), ChatMessage(role: "assistant", content: i % 2 == 0 ? "yes" : "no")])
        }
        let data = try AlignmentTestModel.write(examples.map { SFTDataset.jsonLine($0) }, "sft")
        let a = AlignmentTestModel.temporary("sft-a"), b = AlignmentTestModel.temporary("sft-b")
        defer { for u in [model, data, a, b] { try? FileManager.default.removeItem(at: u) } }
        func options(_ out: URL, steps: Int, resume: Bool = false) -> SFTOptions {
            var o = Self.quickOptions(model: model, data: [data], output: out, steps: steps, checkpointInterval: 15, resume: resume)
            o.groupByLength = true
            o.validationFraction = 0.1
            o.settings.threads = 2
            return o
        }
        let tokenizer = try ByteLevelBPETokenizer(contentsOf: model.appendingPathComponent("tokenizer.json"))
        func answerLoss(_ directory: URL) throws -> Float {
            let m = try LlamaModel.load(directory: directory)
            let tokenized = examples.map { tokenizeChat($0, tokenizer: tokenizer, maxLength: 64) }
            let batch = paddedBatch(tokenized.map(\.ids), targetMasks: tokenized.map(\.assistantMask), padID: Int32(tokenizer.padID ?? tokenizer.endOfTextID))
            return withoutGradients { sftLoss(logits: m.logits(tokens: batch.tokens, batch: tokenized.count, sequence: batch.length), targets: batch.targets).item }
        }
        try SFTTrainer(options: options(a, steps: 30)).run()
        XCTAssertLessThan(try answerLoss(a), 0.5 * (try answerLoss(model)), "the answer tokens' loss should fall")
        // 15 steps, then resume to 30: the same batches, the same weights.
        try SFTTrainer(options: options(b, steps: 15)).run()
        try SFTTrainer(options: options(b, steps: 30, resume: true)).run()
        XCTAssertTrue(try AlignmentTestModel.weightsEqual(a, b), "15 steps + resume to 30 should equal 30 straight steps")
    }

    /// A pipeline's stage reads its sibling directories: its checkpoint keeps those paths
    /// relative to the run, so a run directory moved whole resumes, and ends as the straight run
    /// does; an input that really changed is still refused.
    func testRunMovedWholeResumesAndAChangedInputIsStillRefused() throws {
        let root = AlignmentTestModel.temporary("sft-moved"), moved = AlignmentTestModel.temporary("sft-moved-to")
        let straight = AlignmentTestModel.temporary("sft-straight")
        defer { for u in [root, moved, straight] { try? FileManager.default.removeItem(at: u) } }
        try FileManager.default.createDirectory(at: root.appendingPathComponent("tasks"), withIntermediateDirectories: true)
        let model = try AlignmentTestModel.make()
        try FileManager.default.moveItem(at: model, to: root.appendingPathComponent("base"))
        let lines = (0..<16).map { i in
            SFTDataset.jsonLine(SFTExample(messages: [ChatMessage(role: "user", content: "question \(i): what is \(i) plus one?"),
                                                      ChatMessage(role: "assistant", content: i % 2 == 0 ? "yes" : "no")]))
        }
        try lines.joined(separator: "\n").write(to: root.appendingPathComponent("tasks/sft.jsonl"), atomically: true, encoding: .utf8)
        func options(_ run: URL, out: URL? = nil, steps: Int, resume: Bool = false) -> SFTOptions {
            Self.quickOptions(model: run.appendingPathComponent("base"), data: [run.appendingPathComponent("tasks/sft.jsonl")],
                              output: out ?? run.appendingPathComponent("sft"), steps: steps, checkpointInterval: 4, resume: resume)
        }
        try SFTTrainer(options: options(root, out: straight, steps: 8)).run()
        try SFTTrainer(options: options(root, steps: 4)).run()
        try FileManager.default.moveItem(at: root, to: moved)
        try SFTTrainer(options: options(moved, steps: 8, resume: true)).run()
        XCTAssertTrue(try AlignmentTestModel.weightsEqual(straight, moved.appendingPathComponent("sft")),
                      "4 steps, the run moved, resumed to 8 should equal 8 straight steps")
        // The same run resumed on other data (outside the run directory) is refused, naming it.
        let outside = try AlignmentTestModel.write(lines, "sft-outside")
        defer { try? FileManager.default.removeItem(at: outside) }
        var other = options(moved, steps: 12, resume: true)
        other.data = [outside]
        XCTAssertThrowsError(try SFTTrainer(options: other).run()) { error in
            XCTAssertTrue("\(error)".contains("data: [<run>/tasks/sft.jsonl] → [\(outside.standardizedFileURL.path)]"), "\(error)")
        }
    }

    func testRelativizedSignatureKeepsOutsidePathsAbsolute() {
        let signature = ["model": "/runs/a/base", "data": "[/runs/a/tasks/x.jsonl, /data/y.jsonl]", "steps": "10", "other": "/runs/ab/c"]
        XCTAssertEqual(RunSignature.relativized(signature, to: URL(fileURLWithPath: "/runs/a/sft")),
                       ["model": "<run>/base", "data": "[<run>/tasks/x.jsonl, /data/y.jsonl]", "steps": "10", "other": "/runs/ab/c"])
    }
}
