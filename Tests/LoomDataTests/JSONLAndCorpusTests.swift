import Foundation
import XCTest
@testable import LoomData

final class JSONLAndCorpusTests: XCTestCase {
    struct Pair: Decodable { var prompt: String; var answer: String }

    func testJSONLReaderYieldsLineNumbersAndDecodes() throws {
        let dir = try makeTemporaryDirectory(self)
        let file = dir.appendingPathComponent("pairs.jsonl")
        try Data("{\"prompt\": \"1+1\", \"answer\": \"2\"}\n\n{\"prompt\": \"2+2\", \"answer\": \"4\"}\r\n".utf8).write(to: file)
        let reader = JSONLReader(url: file)
        let objects = try reader.objects()
        XCTAssertEqual(objects.map(\.lineNumber), [1, 3])
        XCTAssertEqual(objects[1].object["answer"] as? String, "4")
        let decoded = try reader.decode(Pair.self)
        XCTAssertEqual(decoded.map(\.value.prompt), ["1+1", "2+2"])
        XCTAssertEqual(decoded.map(\.lineNumber), [1, 3])
    }

    func testMalformedJSONLNamesFileAndLine() throws {
        let dir = try makeTemporaryDirectory(self)
        let file = dir.appendingPathComponent("bad.jsonl")
        try Data("{\"text\": \"fine\"}\n{\"txt\": \"typo\"}\n{\"text\": 3}\n{not json\n[1, 2]\n".utf8).write(to: file)
        assertDataError(["bad.jsonl:2", "missing \"text\" field"]) {
            var corpus = Corpus(documents: [], sources: [])
            try corpus.read(file)
        }
        assertDataError(["bad.jsonl:1", "missing \"prompt\" field"]) { _ = try JSONLReader(url: file).decode(Pair.self) }
        var lines: [Int] = []
        var skipped: [String] = []
        try JSONLReader(url: file).forEachObject(skipMalformed: true, onSkip: { skipped.append($0.description) }) { n, _ in lines.append(n) }
        XCTAssertEqual(lines, [1, 2, 3])
        XCTAssertEqual(skipped.count, 2)
        XCTAssertTrue(skipped[0].contains("bad.jsonl:4") && skipped[0].contains("invalid JSON"), skipped[0])
        XCTAssertTrue(skipped[1].contains("bad.jsonl:5") && skipped[1].contains("expected a JSON object, found an array"), skipped[1])

        var corpus = Corpus(documents: [], sources: [])
        try corpus.read(file, options: IngestOptions(skipBadLines: true))
        XCTAssertEqual(corpus.documents.map(\.text), ["fine"])
        XCTAssertEqual(corpus.sources[0].skippedLines, 4)
        XCTAssertTrue(corpus.skippedLineErrors.contains { $0.contains("bad.jsonl:3") && $0.contains("\"text\" must be a string, found a number") })
    }

    func testBadUTF8GivesFileAndByteOffset() throws {
        let dir = try makeTemporaryDirectory(self)
        let file = dir.appendingPathComponent("latin1.txt")
        try Data(Array("caf".utf8) + [0xE9] + Array(" au lait".utf8)).write(to: file)
        assertDataError(["latin1.txt", "invalid UTF-8 at byte offset 3"]) { _ = try TextFiles.readText(file) }
        XCTAssertNil(TextFiles.firstInvalidUTF8Offset(Array("ok 床前明月光 🙂".utf8)))
        XCTAssertEqual(TextFiles.firstInvalidUTF8Offset([0x61, 0xED, 0xA0, 0x80]), 1)  // a UTF-16 surrogate
        XCTAssertEqual(TextFiles.firstInvalidUTF8Offset([0xC0, 0x80]), 0)  // overlong
    }

    func testMissingFileAndUnsupportedType() throws {
        assertDataError(["/no/such/input.txt", "no such file"]) { _ = try Corpus.ingest(paths: ["/no/such/input.txt"]) }
        let dir = try makeTemporaryDirectory(self)
        let pdf = dir.appendingPathComponent("paper.pdf")
        try Data("x".utf8).write(to: pdf)
        assertDataError(["paper.pdf", "unsupported"]) { _ = try Corpus.ingest(paths: [pdf.path]) }
    }

    func testPlainTextSplitsAtFormFeedsAndSeparatorLines() {
        XCTAssertEqual(Corpus.splitPlainText("one doc\nno breaks\n"), ["one doc\nno breaks\n"])
        XCTAssertEqual(Corpus.splitPlainText("a\n\u{0C}\nb\n<|endoftext|>\nc\r\nd\n\u{0C}"), ["a\n", "\nb\n", "c\nd\n"])
    }

    func testIngestFolderRecursivelySortedWithGzip() throws {
        let dir = try makeTemporaryDirectory(self)
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("sub"), withIntermediateDirectories: true)
        try Data("second file".utf8).write(to: dir.appendingPathComponent("b.md"))
        try Data("first file".utf8).write(to: dir.appendingPathComponent("a.txt"))
        try Data("{\"text\": \"from gz line 1\"}\n{\"text\": \"from gz line 2\"}\n".utf8).write(to: dir.appendingPathComponent("sub/c.jsonl"))
        XCTAssertEqual(try runProcess("/bin/gzip", [dir.appendingPathComponent("sub/c.jsonl").path]), 0)
        try Data("ignored".utf8).write(to: dir.appendingPathComponent("notes.csv"))
        let corpus = try Corpus.ingest(paths: [dir.path])
        XCTAssertEqual(corpus.documents.map(\.text), ["first file", "second file", "from gz line 1", "from gz line 2"])
        XCTAssertEqual(corpus.sources.map(\.documents), [1, 1, 2])
        XCTAssertEqual(corpus.sources[2].format, "jsonl")
        XCTAssertEqual(corpus.origin(of: corpus.documents[3]), dir.appendingPathComponent("sub/c.jsonl.gz").path + ":2")
        XCTAssertEqual(corpus.ignoredFiles.map { URL(fileURLWithPath: $0).lastPathComponent }, ["notes.csv"])
        let limited = try Corpus.ingest(paths: [dir.path], options: IngestOptions(maxDocuments: 3))
        XCTAssertEqual(limited.documents.count, 3)
    }
}
