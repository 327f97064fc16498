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

/// A pathological "word" (megabytes without a space) costs linear time: pre-tokens longer
/// than `PreTokenizer.maxPreTokenBytes` reach BPE in pieces, in training and in encoding.
final class LongPreTokenTests: XCTestCase {
    func testLongPreTokensAreCutAtScalarBoundariesIntoBoundedPieces() {
        let word = String(repeating: "é", count: 3_000) + String(repeating: "a", count: 1_500) + "😀"   // 7,504 bytes, one pre-token
        var pieces: [[UInt8]] = []
        var bytes = Array(word.utf8)
        bytes.withUnsafeMutableBufferPointer { buffer in
            PreTokenizer(pattern: .loom).split(UnsafeBufferPointer(buffer), scratch: PreTokenizer.Scratch()) { start, end in
                pieces.append(Array(buffer[start..<end]))
            }
        }
        XCTAssertEqual(pieces.flatMap { $0 }, Array(word.utf8))
        XCTAssertEqual(pieces.count, 9)   // 7,500 bytes of letters in 8 pieces, then the emoji
        for piece in pieces {
            XCTAssertLessThanOrEqual(piece.count, PreTokenizer.maxPreTokenBytes)
            XCTAssertNotNil(String(validating: piece, as: UTF8.self), "a piece ends inside a character")
        }
        // Below the cap nothing changes: "hello" and " world" stay two pre-tokens.
        var short = Array("hello world".utf8)
        var cuts: [Int] = []
        short.withUnsafeMutableBufferPointer { buffer in
            PreTokenizer(pattern: .loom).split(UnsafeBufferPointer(buffer), scratch: PreTokenizer.Scratch()) { _, end in cuts.append(end) }
        }
        XCTAssertEqual(cuts, [5, 11])
    }

    func testAMegabyteWordTrainsAndRoundTripsWithBoundedTokens() throws {
        // 2 MB of seeded random letters with no space: one pre-token to the pattern.
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        let letters = Array("abcdefghij".utf8)
        let word = String(decoding: (0..<2_000_000).map { _ -> UInt8 in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return letters[Int(state >> 33) % letters.count]
        }, as: UTF8.self)
        let tokenizer = ByteLevelBPETokenizer.train(texts: [word, "a few ordinary words, to be sure."], vocabSize: 400)
        XCTAssertEqual(tokenizer.vocabularySize, 400)
        let longest = (0..<tokenizer.vocabularySize).map { tokenizer.decodeBytes([$0]).count }.max()!
        XCTAssertLessThanOrEqual(longest, PreTokenizer.maxPreTokenBytes)
        let ids = tokenizer.encode(word)
        XCTAssertLessThan(ids.count, word.utf8.count * 6 / 10, "merges were learned and used")
        XCTAssertEqual(tokenizer.decode(ids), word)
        // The written tokenizer.json stays small (the unbounded trainer wrote hundreds of MB).
        XCTAssertLessThan(try tokenizer.tokenizerJSON().count, 1_000_000)
        // A run of one character, the worst case for merges of merges.
        let run = String(repeating: "z", count: 1_000_000)
        XCTAssertEqual(tokenizer.decode(tokenizer.encode(run)), run)
    }
}
