import Foundation
import XCTest
@testable import LoomData

/// A fresh temporary folder, removed when the test ends.
func makeTemporaryDirectory(_ test: XCTestCase) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("loomdata-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}

/// Runs a program and returns its exit status.
@discardableResult
func runProcess(_ path: String, _ arguments: [String]) throws -> Int32 {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    try process.run()
    process.waitUntilExit()
    return process.terminationStatus
}

/// Asserts that `body` throws a `DataError` whose message contains every fragment.
func assertDataError(_ fragments: [String], file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
    do {
        try body()
        XCTFail("expected an error containing \(fragments)", file: file, line: line)
    } catch let error as DataError {
        for fragment in fragments {
            XCTAssertTrue(error.description.contains(fragment), "\"\(error.description)\" lacks \"\(fragment)\"", file: file, line: line)
        }
    } catch {
        XCTFail("expected a DataError, got \(error)", file: file, line: line)
    }
}

/// A stand-in tokenizer: one token per byte, `<|endoftext|>` = 256. Enough to test the
/// pipeline without depending on the BPE trainer.
final class ByteTokenizer: CorpusTokenizer {
    var vocabularySize: Int { 257 }
    var endOfTextID: Int { 256 }
    var trainedOn: [String] = []

    func encode(_ text: String, allowSpecialTokens: Bool) -> [Int] {
        text.utf8.map { Int($0) }
    }

    func save(to directory: URL) throws {
        try Data(#"{"model": {"type": "bytes"}}"#.utf8).write(to: directory.appendingPathComponent("tokenizer.json"))
        try Data("{}".utf8).write(to: directory.appendingPathComponent("tokenizer_config.json"))
    }
}
