import XCTest
@testable import LoomSupport

final class DurationTextTests: XCTestCase {
    func testFormats() {
        XCTAssertEqual(DurationText.format(0), "0.0s")
        XCTAssertEqual(DurationText.format(4.24), "4.2s")
        XCTAssertEqual(DurationText.format(59.94), "59.9s")
        XCTAssertEqual(DurationText.format(59.96), "1m00s")   // never "60.0s"
        XCTAssertEqual(DurationText.format(65), "1m05s")
        XCTAssertEqual(DurationText.format(3599.4), "59m59s")
        XCTAssertEqual(DurationText.format(3600), "1h00m")
        XCTAssertEqual(DurationText.format(7384), "2h03m")
        XCTAssertEqual(DurationText.format(100 * 3600 + 59), "100h00m")
    }

    func testUnknownDurations() {
        XCTAssertEqual(DurationText.format(.nan), "?")
        XCTAssertEqual(DurationText.format(.infinity), "?")
        XCTAssertEqual(DurationText.format(-1), "?")
    }
}

final class NamedCasesTests: XCTestCase {
    enum Kind: String, CaseIterable { case arithmetic, reverseWord, sortLetters }

    func testParsesInOrder() throws {
        XCTAssertEqual(try NamedCases.parse(["sortLetters", "arithmetic"], as: Kind.self, what: "task kind"), [.sortLetters, .arithmetic])
        XCTAssertEqual(try NamedCases.parse([], as: Kind.self, what: "task kind"), [])
    }

    func testUnknownNameIsNamedWithTheKnownOnes() {
        XCTAssertThrowsError(try NamedCases.parse(["arithmetic", "Arithmetic", "poetry"], as: Kind.self, what: "task kind")) { error in
            let unknown = error as? UnknownNameError
            XCTAssertEqual(unknown?.name, "Arithmetic")   // the first bad one; names are case-sensitive
            XCTAssertEqual("\(error)", "unknown task kind \"Arithmetic\"; known: arithmetic, reverseWord, sortLetters")
        }
    }

    func testSplitList() {
        XCTAssertEqual(NamedCases.splitList(" a, b,,c ,"), ["a", "b", "c"])
        XCTAssertEqual(NamedCases.splitList(" , "), [])
    }
}
