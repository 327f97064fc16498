import Foundation
import XCTest
@testable import LoomTokenizer

final class TokenizerFileTests: XCTestCase {
    let probe = "Hello world! It's 2024: 中文 😀 def f(x):\n    return x  "

    /// Rewrites the GPT-2 file with merges as "a b" strings; both formats must give the same ids.
    func testBothMergeFormats() throws {
        let url = Reference.directory.appendingPathComponent("gpt2-tokenizer.json")
        var root = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        var model = try XCTUnwrap(root["model"] as? [String: Any])
        let pairs = try XCTUnwrap(model["merges"] as? [[String]])
        XCTAssertEqual(pairs.count, 50000)
        model["merges"] = pairs.map { $0.joined(separator: " ") }
        root["model"] = model
        let directory = temporaryDirectory()
        let stringsURL = directory.appendingPathComponent("tokenizer.json")
        try JSONSerialization.data(withJSONObject: root).write(to: stringsURL)
        let fromStrings = try ByteLevelBPETokenizer(contentsOf: stringsURL)
        XCTAssertEqual(fromStrings.encode(probe), Reference.gpt2.encode(probe))
        XCTAssertEqual(fromStrings.encode(RoundTripTests.samples.joined()), Reference.gpt2.encode(RoundTripTests.samples.joined()))
    }

    func testSaveLoadRoundTrip() throws {
        let trained = ByteLevelBPETokenizer.train(texts: [Reference.tinyCorpus], vocabSize: 420)
        trained.modelMaxLength = 256
        let directory = temporaryDirectory().appendingPathComponent("model")
        try trained.save(to: directory)
        XCTAssertTrue(FileManager.default.fileExists(atPath: directory.appendingPathComponent("tokenizer_config.json").path))
        let loaded = try ByteLevelBPETokenizer(contentsOf: directory)
        XCTAssertEqual(loaded.vocabularySize, 420)
        XCTAssertEqual(loaded.specialTokens, trained.specialTokens)
        XCTAssertEqual(loaded.endOfTextID, trained.endOfTextID)
        XCTAssertEqual(loaded.padID, trained.padID)
        XCTAssertEqual(loaded.modelMaxLength, 256)
        XCTAssertEqual(loaded.chatTemplate.jinja, ChatTemplate.chatML.jinja)
        for text in RoundTripTests.samples + [probe, Reference.tinyCorpus] {
            XCTAssertEqual(loaded.encode(text), trained.encode(text))
        }
        XCTAssertEqual(try loaded.tokenizerJSON(), try trained.tokenizerJSON())
        XCTAssertEqual(try loaded.tokenizerConfigJSON(), try trained.tokenizerConfigJSON())
        // Saving again over the same directory replaces the files.
        try loaded.save(to: directory)
        XCTAssertEqual(try ByteLevelBPETokenizer(contentsOf: directory.appendingPathComponent("tokenizer.json")).encode(probe), trained.encode(probe))
        // GPT-2 (ByteLevel pre-tokenizer) survives a save too.
        let gpt2Directory = temporaryDirectory()
        try Reference.gpt2.save(to: gpt2Directory)
        XCTAssertEqual(try ByteLevelBPETokenizer(contentsOf: gpt2Directory).encode(probe), Reference.gpt2.encode(probe))
    }

    func testLoadingFileWithoutConfigDefaultsToChatML() throws {
        let directory = temporaryDirectory()
        let url = directory.appendingPathComponent("tokenizer.json")
        try Reference.trainTiny().tokenizerJSON().write(to: url)
        let loaded = try ByteLevelBPETokenizer(contentsOf: url)
        XCTAssertEqual(loaded.chatTemplate.jinja, ChatTemplate.chatML.jinja)
        XCTAssertEqual(loaded.endOfTextID, 0)
    }

    /// transformers 4.49+ saves the chat template as chat_template.jinja, and reads it in
    /// preference to tokenizer_config.json's; Loom reads it the same way. A Llama 3 template
    /// arriving that way is therefore refused for chat instead of being replaced by ChatML.
    func testChatTemplateFileWinsOverTokenizerConfig() throws {
        let directory = temporaryDirectory()
        try Reference.trainTiny().save(to: directory)
        let llama3 = "{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] + '<|eot_id|>' }}{% endfor %}"
        try Data(llama3.utf8).write(to: directory.appendingPathComponent(ByteLevelBPETokenizer.chatTemplateFileName))
        let loaded = try ByteLevelBPETokenizer(contentsOf: directory)
        XCTAssertEqual(loaded.chatTemplate.jinja, llama3)
        XCTAssertNotNil(loaded.chatTemplate.unsupportedReason)
        try Data([0xff, 0xfe, 0x00]).write(to: directory.appendingPathComponent(ByteLevelBPETokenizer.chatTemplateFileName))
        assertLoadError(directory.appendingPathComponent(ByteLevelBPETokenizer.chatTemplateFileName), contains: "UTF-8", loading: directory)
    }

    private func assertLoadError(_ url: URL, contains fragment: String, loading: URL? = nil, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try ByteLevelBPETokenizer(contentsOf: loading ?? url), file: file, line: line) { error in
            let description = String(describing: error)
            XCTAssertTrue(error is TokenizerError, file: file, line: line)
            XCTAssertTrue(description.contains(url.lastPathComponent), "\(description) does not name the file", file: file, line: line)
            XCTAssertTrue(description.contains(fragment), "\(description) does not say \(fragment)", file: file, line: line)
        }
    }

    func testErrorsNameTheFile() throws {
        let directory = temporaryDirectory()
        assertLoadError(directory.appendingPathComponent("missing-tokenizer.json"), contains: "no such file")

        let badJSON = directory.appendingPathComponent("bad.json")
        try Data("{\"model\": {\"type\": \"BPE\", ".utf8).write(to: badJSON)
        assertLoadError(badJSON, contains: "invalid JSON")

        let wordPiece = directory.appendingPathComponent("wordpiece.json")
        try Data(#"{"model": {"type": "WordPiece", "vocab": {"[UNK]": 0}}, "pre_tokenizer": {"type": "BertPreTokenizer"}}"#.utf8).write(to: wordPiece)
        assertLoadError(wordPiece, contains: "unsupported model type \"WordPiece\"")

        let noMerges = directory.appendingPathComponent("nomerges.json")
        try Data(#"{"model": {"type": "BPE", "vocab": {"a": 0}}, "pre_tokenizer": {"type": "ByteLevel"}}"#.utf8).write(to: noMerges)
        assertLoadError(noMerges, contains: "model.merges")

        let badMerge = directory.appendingPathComponent("badmerge.json")
        try Data(#"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}, "pre_tokenizer": {"type": "ByteLevel"}, "added_tokens": [{"id": 0, "content": "a", "special": true}]}"#.utf8).write(to: badMerge)
        assertLoadError(badMerge, contains: "not in the vocabulary")

        let otherRegex = directory.appendingPathComponent("regex.json")
        try Data(#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "\\w+"}, "behavior": "Isolated", "invert": false}, {"type": "ByteLevel", "use_regex": false}]}}"#.utf8).write(to: otherRegex)
        assertLoadError(otherRegex, contains: "unsupported pre_tokenizer")

        let emptyDirectory = directory.appendingPathComponent("empty-model")
        try FileManager.default.createDirectory(at: emptyDirectory, withIntermediateDirectories: true)
        assertLoadError(emptyDirectory, contains: "no such file")
    }
}
