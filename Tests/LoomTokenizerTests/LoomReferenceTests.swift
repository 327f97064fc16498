import Foundation
import XCTest
@testable import LoomTokenizer

/// A tokenizer trained by Loom, as seen by Python: the committed loom-tiny/ files are what
/// `train` produces (training is deterministic), and Python `tokenizers` / `transformers`
/// loading them give the committed ids, decodes and chat-template renderings.
final class LoomReferenceTests: XCTestCase {
    func testTrainingIsDeterministicAndMatchesCommittedFiles() throws {
        let tokenizer = Reference.trainTiny()
        XCTAssertEqual(tokenizer.vocabularySize, 500)
        XCTAssertEqual(tokenizer.specialTokens, ByteLevelBPETokenizer.defaultSpecialTokens)
        XCTAssertEqual(tokenizer.tokenID("<|endoftext|>"), 0)
        XCTAssertEqual(tokenizer.padID, 1)
        XCTAssertEqual(tokenizer.tokenID("!"), 4 + 0x21)
        if Reference.updating {
            try tokenizer.save(to: Reference.sourceDirectory.appendingPathComponent("loom-tiny"))
            print("wrote \(Reference.sourceDirectory.appendingPathComponent("loom-tiny").path); now run scripts/make_tokenizer_reference.py")
        }
        let committed = Reference.directory.appendingPathComponent("loom-tiny")
        XCTAssertEqual(try tokenizer.tokenizerJSON(), try Data(contentsOf: committed.appendingPathComponent("tokenizer.json")),
                       "training is not reproducible (or loom-tiny/ is stale: LOOM_UPDATE_REFERENCE=1)")
        XCTAssertEqual(try tokenizer.tokenizerConfigJSON(), try Data(contentsOf: committed.appendingPathComponent("tokenizer_config.json")))
        XCTAssertEqual(try Reference.trainTiny().tokenizerJSON(), try tokenizer.tokenizerJSON())
    }

    func testIdsMatchPythonTokenizers() throws {
        let expected = try Reference.expected("loom-tiny-expected.json")
        let loaded = try ByteLevelBPETokenizer(contentsOf: Reference.directory.appendingPathComponent("loom-tiny"))
        let trained = Reference.trainTiny()
        for (i, (string, ids)) in zip(expected.strings, expected.ids).enumerated() {
            let got = loaded.encode(string)
            XCTAssertEqual(got, ids, "\(string.debugDescription): \(firstDifference(got, ids))")
            XCTAssertEqual(trained.encode(string), ids)
            XCTAssertEqual(loaded.decode(got), expected.decoded?[i], "transformers decodes differently")
        }
    }

    func testChatTemplateRendersLikeTransformers() throws {
        let expected = try Reference.expected("loom-tiny-expected.json")
        let conversation = try XCTUnwrap(expected.conversation)
        let loaded = try ByteLevelBPETokenizer(contentsOf: Reference.directory.appendingPathComponent("loom-tiny"))
        XCTAssertEqual(loaded.chatTemplate.render(conversation, addGenerationPrompt: false), expected.rendered)
        XCTAssertEqual(loaded.chatTemplate.render(Array(conversation.prefix(4)), addGenerationPrompt: true),
                       expected.rendered_with_generation_prompt)
    }
}
