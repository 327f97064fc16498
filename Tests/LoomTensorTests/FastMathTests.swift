import XCTest
import Foundation
@testable import LoomTensor

final class FastMathTests: XCTestCase {
    func testVectorExpMatchesLibmToAFewUlp() {
        var worst: Double = 0
        var x: Float = -87
        while x < 88 {
            let got = Double(FastMath.exp(x)), expected = Foundation.exp(Double(x))
            worst = max(worst, abs(got - expected) / expected)
            x += 0.0137
        }
        XCTAssertLessThan(worst, 5e-7, "worst relative error of FastMath.exp")
    }

    func testBufferExpSumAndTail() {
        let values: [Float] = (0..<19).map { Float($0) * 0.3 - 2 }   // 19: two vectors plus a tail of 3
        var out = [Float](repeating: 0, count: 19)
        let total = values.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { FastMath.exp(src.baseAddress!, shift: -1, into: $0.baseAddress!, count: 19) }
        }
        for i in 0..<19 { XCTAssertEqual(out[i], Foundation.exp(values[i] - 1), accuracy: 1e-6 * out[i]) }
        XCTAssertEqual(total, out.reduce(0, +), accuracy: 1e-4)
        XCTAssertEqual(values.withUnsafeBufferPointer { FastMath.maximum($0.baseAddress!, count: 19) }, values.max()!)
    }

    func testExtremeInputsStayFinite() {
        XCTAssertEqual(FastMath.exp(-1000), 0, accuracy: 1e-37)
        XCTAssertTrue(FastMath.exp(1000).isFinite)
    }
}
