import XCTest
import Foundation
import LoomEval

/// `loom eval --answers-out` / `--paired-with`: the graded answers survive the file, an
/// in-context file is read per k, and files that cannot be paired are refused with the reason.
final class AnswerFileTests: XCTestCase {
    func result(_ correct: [Bool], prompts: String = "p") -> ExactMatchResult {
        ExactMatchResult(correct: correct.filter { $0 }.count, total: correct.count,
                         samples: correct.indices.map { .init(prompt: "\(prompts)\($0) \"quoted\"\nline", answer: "a", response: correct[$0] ? "a" : "b/c", correct: correct[$0]) })
    }

    func write(_ lines: [String]) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("answers-\(UUID().uuidString).jsonl")
        try (lines.joined(separator: "\n") + "\n").write(to: url, atomically: true, encoding: .utf8)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    func testRoundTripAndPairing() throws {
        let baseline = result([true, false, false, true]), better = result([true, true, true, true])
        let url = try write(AnswerFile.lines(baseline))
        let read = try AnswerFile.read(url)
        XCTAssertEqual(read, baseline)
        let paired = try AnswerFile.pairedDifference(better, baseline: read, baselineName: url.path)
        XCTAssertEqual(paired.difference, 0.5, accuracy: 1e-12)
        XCTAssertEqual(paired.onlyThis, 2)
        XCTAssertEqual(paired.onlyBaseline, 0)
    }

    func testInContextFileIsReadPerShots() throws {
        let zero = result([false, false]), five = result([true, false])
        let url = try write(AnswerFile.lines(zero, shots: 0) + AnswerFile.lines(five, shots: 5))
        XCTAssertEqual(try AnswerFile.read(url, shots: 5), five)
        XCTAssertEqual(try AnswerFile.read(url, shots: 0), zero)
        XCTAssertThrowsError(try AnswerFile.read(url)) { XCTAssertTrue("\($0)".contains("k = 0, 5"), "\($0)") }
        XCTAssertThrowsError(try AnswerFile.read(url, shots: 1)) { XCTAssertTrue("\($0)".contains("no answers for k = 1"), "\($0)") }
    }

    func testBadFilesAreRefused() throws {
        let url = try write(["{\"prompt\": \"p\", \"answer\": \"a\", \"response\": \"a\", \"correct\": true}", "{\"prompt\": \"q\"}"])
        XCTAssertThrowsError(try AnswerFile.read(url)) { XCTAssertTrue("\($0)".contains("line 2"), "\($0)") }
        let missing = URL(fileURLWithPath: "/nonexistent/answers.jsonl")
        XCTAssertThrowsError(try AnswerFile.read(missing)) { XCTAssertTrue("\($0)".contains(missing.path), "\($0)") }
        // Different problems, or a different number of them, cannot be paired.
        XCTAssertThrowsError(try AnswerFile.pairedDifference(result([true]), baseline: result([true, false]), baselineName: "old.jsonl")) {
            XCTAssertTrue("\($0)".contains("old.jsonl"), "\($0)")
        }
        XCTAssertThrowsError(try AnswerFile.pairedDifference(result([true], prompts: "x"), baseline: result([true]), baselineName: "old.jsonl"))
    }
}
