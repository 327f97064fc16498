import XCTest
import Foundation
@testable import LoomTrain

/// `DataParallelOptimizer.clipCheckUpdate`, the end of every stage's optimizer step.
final class ClipCheckUpdateTests: XCTestCase {
    private struct Stopped: Error { let norm: Float }

    private func store(values: [Float], gradients: [Float]) -> ParameterStore {
        let store = ParameterStore([("w", [values.count])])
        for i in values.indices { store.values.pointer[i] = values[i]; store.gradients.pointer[i] = gradients[i] }
        return store
    }

    func testClipsThenUpdatesAndReturnsTheNormBeforeClipping() throws {
        let clipped = store(values: [1, 1], gradients: [3, 4])
        let stepper = try DataParallelOptimizer(singleProcess: clipped, hyperparameters: AdamW.Hyperparameters())
        let norm = try stepper.clipCheckUpdate(maxNorm: 1, learningRate: 0.1) { Stopped(norm: $0) }
        XCTAssertEqual(norm, 5, accuracy: 1e-6)
        // The same step by hand: clip to norm 1, then AdamW.
        let reference = store(values: [1, 1], gradients: [3, 4])
        clipGradientNorm(reference, maxNorm: 1)
        AdamW(parameters: reference, hyperparameters: AdamW.Hyperparameters()).update(learningRate: 0.1)
        for i in 0..<2 { XCTAssertEqual(clipped.values.pointer[i], reference.values.pointer[i]) }
        XCTAssertNotEqual(clipped.values.pointer[0], 1, "the parameters moved")
    }

    func testNonFiniteNormStopsBeforeTheParametersChange() throws {
        for bad in [Float.nan, .infinity] {
            let parameters = store(values: [1, 2], gradients: [bad, 1])
            let stepper = try DataParallelOptimizer(singleProcess: parameters, hyperparameters: AdamW.Hyperparameters())
            XCTAssertThrowsError(try stepper.clipCheckUpdate(maxNorm: 1, learningRate: 0.1) { Stopped(norm: $0) }) { error in
                XCTAssertFalse((error as? Stopped)?.norm.isFinite ?? true, "\(error)")
            }
            XCTAssertEqual(parameters.values.pointer[0], 1)
            XCTAssertEqual(parameters.values.pointer[1], 2)
            XCTAssertEqual(stepper.optimizer.step, 0, "no AdamW step was taken")
        }
    }
}
