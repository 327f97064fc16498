import XCTest
@testable import LoomNN

/// Loom's quantizers against the `gguf` package's `gguf.quants.quantize` (the reference file
/// comes from Tests/Reference/make_quantize_reference.py, regenerated and compared in the test run).
final class QuantizeReferenceTests: XCTestCase {
    func testQuantizationEqualsTheGGUFPackageBitForBit() throws {
        let url = Bundle.module.url(forResource: "Reference", withExtension: nil)!.appendingPathComponent("gguf/quantize_reference.gguf")
        let file = try GGUFFile(contentsOf: url)
        for type in BlockQuantization.allCases {
            let input = try file.tensor(named: "input.\(type.rawValue)")
            let info = try XCTUnwrap(file.info(named: "quant.\(type.rawValue)"))
            XCTAssertEqual(info.type, GGMLType(type))
            let ours = QuantizedMatrix(quantizing: input, as: type).plainBytes()
            file.withRawBytes(of: info) { expected in
                XCTAssertEqual(expected.count, ours.count)
                var firstDifference: Int?
                for i in 0 ..< min(expected.count, ours.count) where expected[i] != ours[i] { firstDifference = i; break }
                XCTAssertNil(firstDifference, "\(type.rawValue): first different byte \(firstDifference ?? -1) (block \((firstDifference ?? 0) / type.bytesPerBlock))")
            }
            // The export path writes the same bytes.
            let exported = GGUFQuants.quantize(GGMLType(type), input.data, count: input.count)
            XCTAssertEqual(exported, ours, "\(type.rawValue): GGUFQuants.quantize differs")
        }
    }
}
