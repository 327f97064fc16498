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

    /// tokenizer.json's TemplateProcessing (how Llama 3's tokenizer adds <|begin_of_text|>):
    /// `encodeAsPrompt` adds what it names, `encode` does not; saving writes it back; a GGUF
    /// carries it as add_bos_token; post-processors Loom does not implement are refused.
    func testPostProcessorSpecialTokensAroundAPrompt() throws {
        let directory = temporaryDirectory()
        let trained = Reference.trainTiny()
        try trained.save(to: directory)
        let bos = try XCTUnwrap(trained.tokenID("<|im_start|>"))
        let url = directory.appendingPathComponent("tokenizer.json")
        var root = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        let template: [String: Any] = [
            "type": "TemplateProcessing",
            "single": [["SpecialToken": ["id": "<|im_start|>", "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]]],
            "pair": [] as [Any],
            "special_tokens": ["<|im_start|>": ["id": "<|im_start|>", "ids": [bos], "tokens": ["<|im_start|>"]]],
        ]
        root["post_processor"] = ["type": "Sequence", "processors": [["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true], template]]
        try JSONSerialization.data(withJSONObject: root).write(to: url)
        let loaded = try ByteLevelBPETokenizer(contentsOf: directory)
        let text = "the cat sat"
        XCTAssertEqual(loaded.encodeAsPrompt(text), [bos] + trained.encode(text))
        XCTAssertEqual(loaded.encode(text), trained.encode(text))
        XCTAssertNotNil(loaded.idDifference(from: trained), "adding a BOS changes what a model is given")

        // Saved and loaded again; and through GGUF metadata (add_bos_token) and back.
        let again = temporaryDirectory()
        try loaded.save(to: again)
        XCTAssertEqual(try ByteLevelBPETokenizer(contentsOf: again).encodeAsPrompt(text), [bos] + trained.encode(text))
        // GGUF says "add the BOS token" only: with bos_token <|endoftext|> (this config's), the
        // template's <|im_start|> cannot be written; with bos_token <|im_start|> it can.
        XCTAssertThrowsError(try loaded.ggufVocabulary(file: "t.gguf")) { XCTAssertTrue("\($0)".contains("can only say")) }
        let configURL = directory.appendingPathComponent("tokenizer_config.json")
        var config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as? [String: Any])
        config["bos_token"] = "<|im_start|>"
        try JSONSerialization.data(withJSONObject: config).write(to: configURL)
        let vocabulary = try ByteLevelBPETokenizer(contentsOf: directory).ggufVocabulary(file: "t.gguf")
        XCTAssertEqual(vocabulary.addBOSToken, true)
        XCTAssertEqual(try ByteLevelBPETokenizer(gguf: vocabulary, file: "t.gguf").encodeAsPrompt(text), [bos] + trained.encode(text))
        XCTAssertEqual(try trained.ggufVocabulary(file: "t.gguf").addBOSToken, false)

        // Post-processors that would change the ids in ways Loom does not implement.
        for (processor, fragment) in [
            (["type": "BertProcessing", "sep": ["[SEP]", 1], "cls": ["[CLS]", 0]] as [String: Any], "unsupported post_processor \"BertProcessing\""),
            (["type": "TemplateProcessing", "single": [] as [Any]] as [String: Any], "no $A"),
            (["type": "TemplateProcessing", "single": [["Sequence": ["id": "B", "type_id": 0]]]] as [String: Any], "only one sequence, $A"),
            (["type": "TemplateProcessing", "single": [["SpecialToken": ["id": "<s>", "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]]], "special_tokens": [:]] as [String: Any], "\"<s>\" has no ids"),
            (["type": "TemplateProcessing", "single": [["SpecialToken": ["id": "x", "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]]],
              "special_tokens": ["x": ["id": "x", "ids": [1_000_000], "tokens": ["x"]]]] as [String: Any], "token id 1000000"),
        ] {
            root["post_processor"] = processor
            try JSONSerialization.data(withJSONObject: root).write(to: url)
            assertLoadError(url, contains: fragment, loading: directory)
        }
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
