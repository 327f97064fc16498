import Foundation
import XCTest
@testable import LoomData

final class PrepareTests: XCTestCase {
    override func setUp() {
        ProgressBar.isEnabled = false
    }

    /// A small corpus with the problems `prepare` must handle: ANSI codes, a repeated
    /// boilerplate line, an exact and a near duplicate, an empty document.
    private func writeCorpus(in dir: URL) throws -> URL {
        let input = dir.appendingPathComponent("corpus")
        try FileManager.default.createDirectory(at: input, withIntermediateDirectories: true)
        func jsonLine(_ text: String) throws -> String {
            String(decoding: try JSONSerialization.data(withJSONObject: ["text": text]), as: UTF8.self)
        }
        var lines: [String] = []
        let subjects = ["the river", "a lantern", "the old mill", "seven crows", "the harbour", "a quiet field",
                        "the winter road", "a copper kettle", "the bell tower", "an open window", "the market square", "a paper boat"]
        for (i, subject) in subjects.enumerated() {
            lines.append(try jsonLine("Story \(i): \(subject) was seen at dawn by \(i + 2) travellers, who spoke of it for \(i + 3) days "
                + "and wrote \(subject) into their letters home.\nVisit loom.example for more stories like this one.\n"))
        }
        lines.append(lines[0])  // exact duplicate
        lines.append(try jsonLine("   "))  // empty
        lines.append(try jsonLine("\u{1B}[32mColoured\u{1B}[0m story about the sea and the ships that sail it every single morning."))
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: input.appendingPathComponent("stories.jsonl"))
        // Two printings of the same scene that differ in one word: a near duplicate.
        let play = (1...30).map { "Line \($0). Enter HAMLET with \($0 * 3) lords; to be, or not to be, that is question \($0)." }
            .joined(separator: "\n")
        try Data(play.utf8).write(to: input.appendingPathComponent("play.txt"))
        try Data(play.replacingOccurrences(of: "Line 7. Enter HAMLET", with: "Line 7. Enter OPHELIA").utf8)
            .write(to: input.appendingPathComponent("play_copy.txt"))
        return input
    }

    func testPrepareEndToEndWithStandInTokenizer() throws {
        let dir = try makeTemporaryDirectory(self)
        let input = try writeCorpus(in: dir)
        var options = PrepareOptions(inputs: [input.path], outputDirectory: dir.appendingPathComponent("out"))
        options.valFraction = 0.2
        options.tokensPerShard = 1000
        options.cleaning.boilerplateMinDocuments = 5
        options.showProgress = false
        let standIn = ByteTokenizer()
        var messages: [String] = []
        let result = try PreparePipeline.run(options, trainTokenizer: { texts, vocab, _ in
            XCTAssertEqual(vocab, 4096)
            standIn.trainedOn = texts
            return standIn
        }, loadTokenizer: { _ in XCTFail("should train"); return standIn }, log: { messages.append($0) })
        let manifest = result.manifest

        XCTAssertEqual(manifest.documentsRead, 17)
        XCTAssertEqual(manifest.removed["empty"], 1)
        XCTAssertEqual(manifest.removed["exactDuplicate"], 1)
        XCTAssertEqual(manifest.removed["nearDuplicate"], 1)
        XCTAssertEqual(manifest.documentsKept, 14)
        XCTAssertEqual(manifest.cleaning.ansiEscapeSequences, 2)
        XCTAssertEqual(manifest.cleaning.boilerplateExamples.first?.line, "Visit loom.example for more stories like this one.")
        XCTAssertEqual(manifest.cleaning.boilerplateLinesRemoved, 13)
        XCTAssertEqual(manifest.splits["val"]?.documents, 3)
        XCTAssertEqual(manifest.splits["train"]?.documents, 11)
        XCTAssertEqual(manifest.dtype, "uint16")
        XCTAssertEqual(manifest.sources.map { URL(fileURLWithPath: $0.path).lastPathComponent }, ["play.txt", "play_copy.txt", "stories.jsonl"])
        XCTAssertTrue(messages.contains { $0.contains("1 exact and 1 near duplicates") }, "\(messages)")

        // The tokenizer saw only training text.
        XCTAssertEqual(standIn.trainedOn.reduce(0) { $0 + $1.utf8.count }, manifest.splits["train"]?.bytes)

        // Shards hold each document's bytes followed by <|endoftext|>, and the byte counts match.
        for split in ["train", "val"] {
            let dataset = try TokenDataset(directory: result.outputDirectory, split: split)
            let summary = manifest.splits[split]!
            XCTAssertEqual(dataset.count, summary.tokens)
            let tokens = dataset.window(from: 0, count: dataset.count)
            XCTAssertEqual(tokens.filter { $0 == 256 }.count, summary.documents)
            XCTAssertEqual(tokens.last, 256)
            XCTAssertEqual(tokens.filter { $0 != 256 }.count, summary.bytes)
            let text = String(decoding: tokens.filter { $0 != 256 }.map { UInt8($0) }, as: UTF8.self)
            XCTAssertFalse(text.contains("\u{1B}"))
            XCTAssertFalse(text.contains("Visit loom.example"))
        }
        XCTAssertGreaterThan(manifest.splits["train"]!.shards.count, 1)

        // Files and a manifest that reads back.
        for name in ["manifest.json", "tokenizer.json", "tokenizer_config.json", "train_000.bin", "val_000.bin"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: result.outputDirectory.appendingPathComponent(name).path), name)
        }
        XCTAssertEqual(try Manifest.load(from: result.outputDirectory), manifest)

        // Same seed, same shards.
        var again = options
        again.outputDirectory = dir.appendingPathComponent("out2")
        let second = try PreparePipeline.run(again, trainTokenizer: { _, _, _ in ByteTokenizer() }, loadTokenizer: { _ in ByteTokenizer() }, log: { _ in })
        for shard in manifest.splits["train"]!.shards {
            XCTAssertEqual(try Data(contentsOf: result.outputDirectory.appendingPathComponent(shard.file)),
                           try Data(contentsOf: second.outputDirectory.appendingPathComponent(shard.file)))
        }
    }

    func testInvalidOptionsAreRejected() {
        var options = PrepareOptions(inputs: ["x"], outputDirectory: URL(fileURLWithPath: "/tmp/none"))
        options.valFraction = 1.5
        assertDataError(["--val-fraction"]) { try options.validate() }
        options.valFraction = 0.05
        options.vocabSize = 100
        assertDataError(["--vocab-size"]) { try options.validate() }
    }
}
