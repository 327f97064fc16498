import Foundation
import XCTest
@testable import LoomData

final class CleanerTests: XCTestCase {
    func testStripsANSIAndControlCharactersKeepsTabsAndNewlines() {
        let input = "\u{1B}[32m《静夜思》\u{1B}[m\r\n作者：李白\u{07}\r\n\tcode\u{0}line  \n\u{1B}]0;title\u{07}end\u{7F}"
        let result = TextCleaner.normalize(input)
        XCTAssertEqual(result.text, "《静夜思》\n作者：李白\n\tcodeline\nend")
        XCTAssertEqual(result.ansiEscapeSequences, 3)
        XCTAssertEqual(result.controlCharacters, 3)
        XCTAssertTrue(result.hadCarriageReturns)
    }

    func testNFCAndLineEndings() {
        let decomposed = "Cafe\u{301} r\u{E9}sum\u{E9}\rnext"
        let result = TextCleaner.normalize(decomposed)
        XCTAssertEqual(result.text, "Caf\u{E9} r\u{E9}sum\u{E9}\nnext")
        XCTAssertEqual(Array(result.text.unicodeScalars).count, 16)
        XCTAssertTrue(result.changedByNFC)
        XCTAssertFalse(TextCleaner.normalize("plain ascii").changedByNFC)
    }

    func testBoilerplateLinesRemovedWithCounts() {
        var documents: [Document] = []
        for i in 0..<10 {
            var text = "Body of document number \(i) with its own words.\nAnother unique line \(i * 7).\n"
            if i < 6 { text += "Subscribe to our newsletter today!\n" }
            if i < 2 { text += "Shared by only two docs here.\n" }
            text += "Exeunt.\n"  // short lines are never boilerplate
            text += "--------------------\n"  // nor are lines of only punctuation
            documents.append(Document(text: text, position: i + 1))
        }
        var options = CleaningOptions()
        options.boilerplateMinDocuments = 5
        options.boilerplateFloor = 3
        let (cleaned, report) = TextCleaner(options: options).clean(documents)
        XCTAssertEqual(report.boilerplateThreshold, 3)  // max(3, min(5, ceil(0.05 × 10)))
        XCTAssertEqual(report.boilerplateDistinctLines, 1)
        XCTAssertEqual(report.boilerplateLinesRemoved, 6)
        XCTAssertEqual(report.boilerplateDocumentsAffected, 6)
        XCTAssertEqual(report.boilerplateExamples, [BoilerplateLine(line: "Subscribe to our newsletter today!", documents: 6)])
        XCTAssertEqual(cleaned.count, 10)
        XCTAssertFalse(cleaned.contains { $0.text.contains("Subscribe") })
        XCTAssertTrue(cleaned[0].text.contains("Shared by only two docs here."))
        XCTAssertTrue(cleaned.allSatisfy { $0.text.hasSuffix("Exeunt.\n--------------------") })
    }

    func testEmptyAndNearEmptyDocumentsDropped() {
        let documents = [
            Document(text: "  \n\t\n", position: 1),
            Document(text: "\u{1B}[31m\u{1B}[0m", position: 2),
            Document(text: "short", position: 3),
            Document(text: "A document long enough to keep.", position: 4),
        ]
        let (cleaned, report) = TextCleaner().clean(documents)
        XCTAssertEqual(cleaned.map(\.position), [4])
        XCTAssertEqual(report.removedDocuments, ["empty": 2, "tooShort": 1])
        XCTAssertEqual(report.documentsIn, 4)
        XCTAssertEqual(report.documentsOut, 1)
    }
}
