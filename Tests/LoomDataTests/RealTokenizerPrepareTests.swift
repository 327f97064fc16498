import Foundation
import XCTest
import LoomTokenizer
@testable import LoomData

/// `prepare` with the real byte-level BPE tokenizer: trained on the train split, then loaded
/// back with `--tokenizer`; the shards decode to the cleaned documents.
final class RealTokenizerPrepareTests: XCTestCase {
    override func setUp() {
        ProgressBar.isEnabled = false
    }

    func testTrainThenReuseTokenizer() throws {
        let dir = try makeTemporaryDirectory(self)
        let input = dir.appendingPathComponent("in")
        try FileManager.default.createDirectory(at: input, withIntermediateDirectories: true)
        var english = ""
        for i in 0..<40 { english += "Verse \(i): and the evening and the morning were day number \(i), and it was good.\n" }
        try Data(english.utf8).write(to: input.appendingPathComponent("genesis.txt"))
        let poems = ["床前明月光，疑是地上霜。举头望明月，低头思故乡。", "白日依山尽，黄河入海流。欲穷千里目，更上一层楼。",
                     "春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。", "千山鸟飞绝，万径人踪灭。孤舟蓑笠翁，独钓寒江雪。"]
        let lines = try poems.map { String(decoding: try JSONSerialization.data(withJSONObject: ["text": $0]), as: UTF8.self) }
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: input.appendingPathComponent("poems.jsonl"))
        try Data("def add(a, b):\n    return a + b  # <|endoftext|> in code is text, not a separator token\n".utf8)
            .write(to: input.appendingPathComponent("code.md"))

        var options = PrepareOptions(inputs: [input.path], outputDirectory: dir.appendingPathComponent("first"))
        options.vocabSize = 320
        options.valFraction = 0.3
        options.showProgress = false
        options.encodeThreads = 2
        let first = try PreparePipeline.run(options, log: { _ in })
        XCTAssertTrue(first.manifest.tokenizer.trainedHere)
        XCTAssertEqual(first.manifest.vocabSize, 320)
        XCTAssertEqual(first.manifest.documentsKept, 6)

        let tokenizer = try ByteLevelBPETokenizer(contentsOf: first.outputDirectory.appendingPathComponent("tokenizer.json"))
        var decodedBytes = 0
        var documents: [String] = []
        for split in ["train", "val"] {
            let dataset = try TokenDataset(directory: first.outputDirectory, split: split)
            let ids = dataset.window(from: 0, count: dataset.count).map(Int.init)
            var current: [Int] = []
            for id in ids {
                if id == tokenizer.endOfTextID {
                    let text = tokenizer.decode(current)
                    documents.append(text)
                    decodedBytes += text.utf8.count
                    current = []
                } else {
                    current.append(id)
                }
            }
            XCTAssertTrue(current.isEmpty, "each document ends with <|endoftext|>")
        }
        XCTAssertEqual(decodedBytes, first.manifest.splits["train"]!.bytes + first.manifest.splits["val"]!.bytes)
        XCTAssertTrue(documents.contains { $0.hasPrefix("床前明月光") })
        XCTAssertTrue(documents.contains { $0.contains("# <|endoftext|> in code is text") }, "a literal special-token string in a document stays text")

        // Reusing the tokenizer gives the same tokens.
        options.outputDirectory = dir.appendingPathComponent("second")
        options.tokenizerPath = first.outputDirectory.appendingPathComponent("tokenizer.json").path
        let second = try PreparePipeline.run(options, log: { _ in })
        XCTAssertFalse(second.manifest.tokenizer.trainedHere)
        XCTAssertEqual(second.manifest.splits, first.manifest.splits)
        XCTAssertTrue(FileManager.default.fileExists(atPath: second.outputDirectory.appendingPathComponent("tokenizer_config.json").path))
    }
}
