import Foundation
import XCTest
@testable import LoomTokenizer

/// Ids of Loom's GPT-2 (loaded from the tokenizer.json that Python `tokenizers` wrote) must
/// equal the ids Python `tokenizers` produced for the same strings.
final class GPT2ParityTests: XCTestCase {
    func testIdsMatchPythonTokenizers() throws {
        let expected = try Reference.expected("gpt2-expected.json")
        let tokenizer = Reference.gpt2
        XCTAssertEqual(tokenizer.vocabularySize, 50257)
        XCTAssertEqual(tokenizer.endOfTextID, 50256)
        for (string, ids) in zip(expected.strings, expected.ids) {
            let got = tokenizer.encode(string)
            XCTAssertEqual(got, ids, "\(string.debugDescription): \(firstDifference(got, ids))")
            XCTAssertEqual(tokenizer.decode(got), string)
        }
    }

    /// `ByteLevel(add_prefix_space: true)` prepends a space to every segment between added tokens.
    func testAddPrefixSpaceMatchesPythonTokenizers() throws {
        let expected = try Reference.expected("gpt2-expected.json")
        let prefixIDs = try XCTUnwrap(expected.add_prefix_space_ids)
        let url = Reference.directory.appendingPathComponent("gpt2-tokenizer.json")
        var root = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        var preTokenizer = try XCTUnwrap(root["pre_tokenizer"] as? [String: Any])
        preTokenizer["add_prefix_space"] = true
        root["pre_tokenizer"] = preTokenizer
        let file = temporaryDirectory().appendingPathComponent("tokenizer.json")
        try JSONSerialization.data(withJSONObject: root).write(to: file)
        let tokenizer = try ByteLevelBPETokenizer(contentsOf: file)
        for (string, ids) in zip(expected.strings, prefixIDs) {
            let got = tokenizer.encode(string)
            XCTAssertEqual(got, ids, "\(string.debugDescription): \(firstDifference(got, ids))")
        }
    }

    func testKnownIds() {
        // From GPT-2's vocabulary: "Hello" = 15496, " world" = 995, "!" = 0.
        XCTAssertEqual(Reference.gpt2.encode("Hello world!"), [15496, 995, 0])
        XCTAssertEqual(Reference.gpt2.tokenID("Ġworld"), 995)
        XCTAssertEqual(Reference.gpt2.encode("<|endoftext|>"), [50256])
    }

    func testGPT2PreTokenizerSplits() {
        func split(_ text: String) -> [String] {
            var pieces: [String] = []
            var text = text
            text.withUTF8 { utf8 in
                PreTokenizer(pattern: .gpt2).split(utf8, scratch: .init()) { start, end in
                    pieces.append(String(decoding: UnsafeBufferPointer(rebasing: utf8[start..<end]), as: UTF8.self))
                }
            }
            return pieces
        }
        XCTAssertEqual(split("x  \n y"), ["x", "  \n", " y"])
        XCTAssertEqual(split("don'T 'sdf !'s"), ["don", "'", "T", " '", "sdf", " !'", "s"])
        XCTAssertEqual(split("a\u{a0}\u{a0}b"), ["a", "\u{a0}", "\u{a0}", "b"])
        XCTAssertEqual(split("it's 2024!  "), ["it", "'s", " 2024", "!", "  "])
    }

    /// The heap-based merge for long words and the small-array loop must agree.
    func testLongWordsMergeLikeShortOnes() {
        let tokenizer = Reference.gpt2
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzeeeaaattth的是")
        for _ in 0..<200 {
            let length = Int.random(in: 1...200, using: &generator)
            let word = String((0..<length).map { _ in alphabet.randomElement(using: &generator)! })
            let bytes = Array(word.utf8)
            var small: [Int32] = [], heap: [Int32] = []
            let scratch = BPEModel.Scratch()
            scratch.symbols = bytes.map { tokenizer.model.byteTokens[Int($0)] }
            tokenizer.model.mergeSmall(scratch: scratch, into: &small)
            scratch.symbols = bytes.map { tokenizer.model.byteTokens[Int($0)] }
            if bytes.count > 1 { tokenizer.model.mergeWithHeap(scratch: scratch, into: &heap) } else { heap = scratch.symbols }
            XCTAssertEqual(small, heap, word)
        }
    }
}
