import Foundation
import XCTest
@testable import LoomSupport

final class JSONStringTests: XCTestCase {
    /// Every string comes back unchanged through Foundation's JSON parser.
    func testRoundTripsThroughJSONSerialization() throws {
        var controls = ""
        for value in 0 ..< 0x20 { controls.unicodeScalars.append(Unicode.Scalar(UInt8(value))) }
        let samples = [
            "", "plain", "say \"hi\"", "back\\slash \\\" \\\\", "line\none\r\ttab", controls,
            "del \u{7F}", "sep \u{2028} par \u{2029}", "héllo wörld 你好", "emoji 🧵🎉 𝔘 \u{10FFFF}", "/slash/",
        ]
        for extra in [JSONString.ExtraEscapes(), .delete, .lineSeparators, [.delete, .lineSeparators]] {
            for sample in samples {
                let literal = JSONString.quoted(sample, alsoEscaping: extra)
                let parsed = try JSONSerialization.jsonObject(with: Data("[\(literal)]".utf8)) as? [String]
                XCTAssertEqual(parsed, [sample], "literal \(literal) with extras \(extra.rawValue)")
            }
        }
    }

    /// The exact bytes: short escapes, lower-case `\u00xx`, everything else raw; extras only on request.
    func testExactEscapes() {
        XCTAssertEqual(JSONString.quoted("a\"b\\c\nd\re\tf"), #""a\"b\\c\nd\re\tf""#)
        XCTAssertEqual(JSONString.quoted("\u{0}\u{1}\u{8}\u{C}\u{1B}\u{1F} "), #""\u0000\u0001\u0008\u000c\u001b\u001f ""#)
        XCTAssertEqual(JSONString.quoted("\u{7F}\u{2028}\u{2029}/é🧵"), "\"\u{7F}\u{2028}\u{2029}/é🧵\"")
        XCTAssertEqual(JSONString.quoted("\u{7F}\u{2028}", alsoEscaping: .delete), "\"\\u007f\u{2028}\"")
        XCTAssertEqual(JSONString.quoted("\u{7F}\u{2028}\u{2029}", alsoEscaping: .lineSeparators), "\"\u{7F}\\u2028\\u2029\"")
    }

    func testAppendAddsToExistingText() {
        var out = "{\"k\":"
        JSONString.append("v\"", to: &out)
        XCTAssertEqual(out, #"{"k":"v\"""#)
    }
}
