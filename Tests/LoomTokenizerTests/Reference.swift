import Foundation
import XCTest
@testable import LoomTokenizer

/// Access to the committed reference files (see scripts/make_tokenizer_reference.py).
enum Reference {
    /// The bundled copy, which is what the tests read.
    static var directory: URL {
        Bundle.module.url(forResource: "Reference", withExtension: nil)!
    }

    /// The copy in the source tree, which `LOOM_UPDATE_REFERENCE=1` rewrites.
    static var sourceDirectory: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Reference")
    }

    static var updating: Bool { ProcessInfo.processInfo.environment["LOOM_UPDATE_REFERENCE"] == "1" }

    struct Expected: Decodable {
        var strings: [String]
        var ids: [[Int]]
        var add_prefix_space_ids: [[Int]]?
        var decoded: [String]?
        var conversation: [ChatMessage]?
        var rendered: String?
        var rendered_with_generation_prompt: String?
    }

    static func expected(_ name: String) throws -> Expected {
        try JSONDecoder().decode(Expected.self, from: Data(contentsOf: directory.appendingPathComponent(name)))
    }

    static let gpt2: ByteLevelBPETokenizer = {
        try! ByteLevelBPETokenizer(contentsOf: directory.appendingPathComponent("gpt2-tokenizer.json"))
    }()

    static var tinyCorpus: String {
        try! String(contentsOf: directory.appendingPathComponent("tiny-corpus.txt"), encoding: .utf8)
    }

    /// The committed Loom-trained tokenizer's training recipe.
    static func trainTiny() -> ByteLevelBPETokenizer {
        ByteLevelBPETokenizer.train(texts: [tinyCorpus], vocabSize: 500)
    }

}

extension XCTestCase {
    /// A new empty directory, removed with its contents when the test ends.
    func temporaryDirectory() -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("loom-tokenizer-tests-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }
}

/// The first index where two id sequences differ, for readable failures.
func firstDifference(_ a: [Int], _ b: [Int]) -> String {
    let i = (0..<min(a.count, b.count)).first { a[$0] != b[$0] } ?? min(a.count, b.count)
    return "first difference at \(i): \(a[i..<min(a.count, i + 6)]) vs \(b[i..<min(b.count, i + 6)]) (lengths \(a.count), \(b.count))"
}
