import Foundation
import XCTest
@testable import LoomTokenizer

/// The pre-tokenizers GGUF files name (`tokenizer.ggml.pre`) cut text where Python
/// `tokenizers` does: Reference/pretokenizers-expected.json is written by
/// Tests/Reference/make_pretokenizer_reference.py (hand-written and seeded random strings).
final class PreTokenizerPatternTests: XCTestCase {
    struct Expected: Decodable {
        struct Case: Decodable {
            var text: String
            var smollm: [[Int]]
            var llama3: [[Int]]
            var qwen2: [[Int]]
        }
        var regexes: [String: String]
        var cases: [Case]
    }

    func splits(_ pattern: PreTokenizerPattern, _ text: String) -> [[Int]] {
        var ranges: [[Int]] = []
        var copy = text
        copy.withUTF8 { utf8 in
            PreTokenizer(pattern: pattern).split(utf8, scratch: PreTokenizer.Scratch()) { ranges.append([$0, $1]) }
        }
        return ranges
    }

    func testSmolLMLlama3AndQwen2SplitLikeTokenizers() throws {
        let url = Reference.directory.appendingPathComponent("pretokenizers-expected.json")
        let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: url))
        XCTAssertEqual(expected.regexes["llama3"], PreTokenizerPattern.llama3Regex)
        XCTAssertEqual(expected.regexes["qwen2"], PreTokenizerPattern.qwen2Regex)
        XCTAssertGreaterThan(expected.cases.count, 20)
        for (index, item) in expected.cases.enumerated() {
            XCTAssertEqual(splits(.smollm, item.text), item.smollm, "smollm, case \(index): \(item.text.debugDescription)")
            XCTAssertEqual(splits(.llama3, item.text), item.llama3, "llama3, case \(index): \(item.text.debugDescription)")
            XCTAssertEqual(splits(.qwen2, item.text), item.qwen2, "qwen2, case \(index): \(item.text.debugDescription)")
        }
    }

    func testLlamaCppNames() {
        XCTAssertEqual(PreTokenizerPattern(llamaCppName: "smollm"), .smollm)
        XCTAssertEqual(PreTokenizerPattern(llamaCppName: "gpt2"), .gpt2)
        XCTAssertEqual(PreTokenizerPattern(llamaCppName: "gpt-2"), .gpt2)
        XCTAssertEqual(PreTokenizerPattern.gpt2.llamaCppName, "gpt-2", "llama.cpp refuses \"gpt2\"")
        XCTAssertEqual(PreTokenizerPattern(llamaCppName: "llama-bpe"), .llama3)
        XCTAssertEqual(PreTokenizerPattern(llamaCppName: "qwen2"), .qwen2)
        XCTAssertNil(PreTokenizerPattern(llamaCppName: "deepseek-llm"))
    }

    /// A GGUF vocabulary: control tokens become special added tokens, the pre-tokenizer is
    /// the one named, and what Loom cannot reproduce is refused naming the key.
    func testGGUFVocabulary() throws {
        let letters = ["a", "b", "ab", "Ġ", "Ġab"]
        var vocabulary = GGUFVocabulary(model: "gpt2", preTokenizer: "smollm", tokens: ["<|endoftext|>", "<|im_end|>"] + letters + ["1", "2"],
                                        tokenTypes: [3, 3, 1, 1, 1, 1, 1, 1, 1], merges: ["a b", "Ġ ab"])
        vocabulary.eosID = 1
        vocabulary.bosID = 0
        let tokenizer = try ByteLevelBPETokenizer(gguf: vocabulary, file: "m.gguf")
        XCTAssertEqual(tokenizer.encode("ab ab12<|im_end|>"), [4, 6, 7, 8, 1])
        XCTAssertEqual(tokenizer.endOfTextID, 1)
        XCTAssertEqual(tokenizer.specialTokens, ["<|endoftext|>", "<|im_end|>"])
        XCTAssertEqual(tokenizer.stopTokenIDs, [1])
        let generation = try JSONSerialization.jsonObject(with: tokenizer.generationConfigJSON()) as! [String: Any]
        XCTAssertEqual(generation["eos_token_id"] as? Int, 1)
        XCTAssertEqual(generation["bos_token_id"] as? Int, 0)

        // Each pattern survives tokenizer.json: written, read back, the same splitting rule.
        for (name, pattern) in [("smollm", PreTokenizerPattern.smollm), ("llama-bpe", .llama3), ("qwen2", .qwen2), ("gpt2", .gpt2)] {
            var named = vocabulary
            named.preTokenizer = name
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("loom-gguf-vocab-\(name)-\(getpid())")
            defer { try? FileManager.default.removeItem(at: directory) }
            try ByteLevelBPETokenizer(gguf: named, file: "m.gguf").save(to: directory)
            XCTAssertEqual(try ByteLevelBPETokenizer(contentsOf: directory).parts.pattern, pattern, name)
        }

        var unknown = vocabulary
        unknown.preTokenizer = "deepseek-llm"
        XCTAssertThrowsError(try ByteLevelBPETokenizer(gguf: unknown, file: "m.gguf")) { error in
            XCTAssertTrue("\(error)".contains("m.gguf") && "\(error)".contains("tokenizer.ggml.pre \"deepseek-llm\""), "\(error)")
        }
        var sentencepiece = vocabulary
        sentencepiece.model = "llama"
        XCTAssertThrowsError(try ByteLevelBPETokenizer(gguf: sentencepiece, file: "m.gguf")) { error in
            XCTAssertTrue("\(error)".contains("tokenizer.ggml.model \"llama\""), "\(error)")
        }
        var badID = vocabulary
        badID.eosID = 99
        XCTAssertThrowsError(try ByteLevelBPETokenizer(gguf: badID, file: "m.gguf")) { error in
            XCTAssertTrue("\(error)".contains("eos_token_id 99"), "\(error)")
        }
        var badTypes = vocabulary
        badTypes.tokenTypes = [3]
        XCTAssertThrowsError(try ByteLevelBPETokenizer(gguf: badTypes, file: "m.gguf")) { error in
            XCTAssertTrue("\(error)".contains("token_type has 1 entries"), "\(error)")
        }
    }
}
