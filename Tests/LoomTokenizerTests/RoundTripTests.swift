import Foundation
import XCTest
@testable import LoomTokenizer

final class RoundTripTests: XCTestCase {
    static let samples = [
        "Hello, world!", "", " ", "  \n\t ", "emoji 😀👍🏽❤️🇯🇵 👨‍👩‍👧‍👦 🧵", "中文分词测试，我们的模型。", "日本語とカタカナ・テスト",
        "combining e\u{301} a\u{308}\u{323} ñ", "controls \u{0}\u{1}\u{7}\u{1B}[0m\u{7F}\u{85}", "\r\n\r\n", "'s'S'LL 'RE",
        "special <|endoftext|> <|im_start|>user\nhi<|im_end|> <|pad|>", "<|endoftext", "tab\tsep\u{3000}ideographic space",
        String(repeating: "长", count: 500), String(repeating: "ab", count: 300), "\u{FEFF}bom \u{200B}zwsp \u{2028}ls",
    ]

    func testSamplesRoundTrip() {
        let tokenizers = [Reference.gpt2, Reference.trainTiny()]
        for tokenizer in tokenizers {
            for text in Self.samples {
                XCTAssertEqual(tokenizer.decode(tokenizer.encode(text)), text, text.debugDescription)
                XCTAssertEqual(tokenizer.decode(tokenizer.encode(text, allowSpecialTokens: false)), text, text.debugDescription)
                XCTAssertEqual(tokenizer.decodeBytes(tokenizer.encode(text)), Array(text.utf8))
            }
        }
    }

    /// Random bytes, read as UTF-8 with replacement, round-trip exactly.
    func testRandomByteSoupRoundTrips() {
        var generator = SystemRandomNumberGenerator()
        let tokenizers = [Reference.gpt2, Reference.trainTiny()]
        for _ in 0..<300 {
            let bytes = (0..<Int.random(in: 0...300, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let text = String(decoding: bytes, as: UTF8.self)
            for tokenizer in tokenizers {
                XCTAssertEqual(tokenizer.decode(tokenizer.encode(text)), text)
            }
        }
    }

    /// Random scalars from all planes (the pre-tokenizer's classes) round-trip exactly.
    func testRandomScalarsRoundTrip() {
        var generator = SystemRandomNumberGenerator()
        let tokenizer = Reference.trainTiny()
        for _ in 0..<300 {
            var scalars = String.UnicodeScalarView()
            for _ in 0..<Int.random(in: 0...100, using: &generator) {
                let ranges: [ClosedRange<UInt32>] = [0...0x7F, 0x80...0x7FF, 0x800...0xD7FF, 0xE000...0xFFFF, 0x10000...0x10FFFF]
                if let scalar = Unicode.Scalar(UInt32.random(in: ranges.randomElement(using: &generator)!, using: &generator)) {
                    scalars.append(scalar)
                }
            }
            let text = String(scalars)
            XCTAssertEqual(tokenizer.decode(tokenizer.encode(text)), text)
        }
    }

    func testSpecialTokens() {
        let tokenizer = Reference.trainTiny()
        let eos = tokenizer.endOfTextID
        XCTAssertEqual(eos, 0)
        XCTAssertEqual(tokenizer.encode("<|endoftext|>"), [eos])
        XCTAssertEqual(tokenizer.encode("a<|endoftext|>b").count, 3)
        XCTAssertFalse(tokenizer.encode("<|endoftext|>", allowSpecialTokens: false).contains(eos))
        XCTAssertEqual(tokenizer.encode("<|im_start|><|im_end|><|pad|>"), [2, 3, 1])
        XCTAssertEqual(tokenizer.decode([eos] + tokenizer.encode("hi") + [eos], skipSpecialTokens: true), "hi")
        XCTAssertEqual(tokenizer.decode(tokenizer.encode("x<|im_end|>y"), skipSpecialTokens: true), "xy")
        XCTAssertTrue(tokenizer.isSpecialToken(3))
        XCTAssertEqual(tokenizer.tokenID("<|im_end|>"), 3)
        XCTAssertNil(tokenizer.tokenID("<|nope|>"))
        // Custom special tokens take the first ids in the given order.
        let custom = ByteLevelBPETokenizer.train(texts: ["aaa bbb"], vocabSize: 300, specialTokens: ["<s>", "</s>"])
        XCTAssertEqual(custom.specialTokens, ["<s>", "</s>"])
        XCTAssertEqual(custom.encode("</s><s>"), [1, 0])
        XCTAssertEqual(custom.endOfTextID, 0)
        XCTAssertNil(custom.padID)
    }

    func testEncodeIsThreadSafe() {
        let tokenizer = Reference.gpt2
        let text = Self.samples.joined(separator: " ")
        let results = UnsafeMutableBufferPointer<Bool>.allocate(capacity: 64)
        defer { results.deallocate() }
        DispatchQueue.concurrentPerform(iterations: 64) { i in
            results[i] = tokenizer.encode(text + String(i)) == tokenizer.encode(text) + tokenizer.encode(String(i))
        }
        XCTAssertTrue(results.allSatisfy { $0 })
    }
}
