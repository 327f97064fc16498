import XCTest
import LoomTensor
@testable import LoomDistributed

/// The single-process side of data parallelism (the multi-rank side runs under mpirun in
/// Tests/MPI/check_data_parallel.py): blocks, batch slices and the identity collectives.
final class DataParallelTests: XCTestCase {
    func testEvenBlocksCoverTheRangeInOrder() {
        XCTAssertEqual(evenBlocks(count: 10, parts: 3), [0..<4, 4..<7, 7..<10])
        XCTAssertEqual(evenBlocks(count: 2, parts: 4), [0..<1, 1..<2, 2..<2, 2..<2])
        XCTAssertEqual(evenBlocks(count: 8, parts: 1), [0..<8])
    }

    func testSingleProcessTakesTheWholeBatchAndLeavesGradientsAlone() throws {
        let parallel = DataParallel(SingleProcessCommunicator())
        XCTAssertFalse(parallel.isDistributed)
        XCTAssertEqual(try parallel.localRows(globalBatch: 6), 0..<6)
        XCTAssertEqual(try parallel.localSlice(["a", "b", "c"]), ["a", "b", "c"])
        let store = ParameterStore([("w", [3])])
        for i in 0..<3 { store.gradients.pointer[i] = Float(i) + 0.5 }
        parallel.averageGradients(store)
        XCTAssertEqual(Array(store.gradients.buffer), [0.5, 1.5, 2.5])
        XCTAssertEqual(parallel.meanWeight(localCount: 7).weight, 1)
        XCTAssertEqual(parallel.averaged([1, 2]), [1, 2])
        try parallel.checkSameLaunch(["a": "1"])
        var block: [Float] = [1, 2], whole: [Float] = [0, 0]
        block.withUnsafeMutableBufferPointer { b in
            whole.withUnsafeMutableBufferPointer { w in parallel.communicator.gather(b, into: w, blocks: [0..<2], root: 0) }
        }
        XCTAssertEqual(whole, [1, 2])
    }

    /// A rank's slice as a rank of a larger group would see it (the slice arithmetic, without MPI).
    func testSlicesOfRanksAreDisjointAndInRankOrder() throws {
        final class FakeRank: Communicator {
            let rank: Int, size: Int
            init(_ rank: Int, of size: Int) { self.rank = rank; self.size = size }
            func allReduce(_ buffer: UnsafeMutableBufferPointer<Float>, _ operation: ReduceOperation) {}
            func allReduce(_ buffer: UnsafeMutableBufferPointer<Double>, _ operation: ReduceOperation) {}
            func reduceScatter(_ buffer: UnsafeMutableBufferPointer<Float>, blocks: [Range<Int>], _ operation: ReduceOperation) {}
            func allGather(_ buffer: UnsafeMutableBufferPointer<Float>, blocks: [Range<Int>]) {}
            func gather(_ block: UnsafeMutableBufferPointer<Float>, into whole: UnsafeMutableBufferPointer<Float>?, blocks: [Range<Int>], root: Int) {}
            func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) {}
            func barrier() {}
        }
        let slices = try (0..<3).map { try DataParallel(FakeRank($0, of: 3)).localSlice(Array(0..<6)) }
        XCTAssertEqual(slices, [[0, 1], [2, 3], [4, 5]])
        XCTAssertThrowsError(try DataParallel(FakeRank(0, of: 4)).localRows(globalBatch: 6)) { error in
            XCTAssertTrue("\(error)".contains("global batch of 6 does not divide by 4 ranks"), "\(error)")
        }
    }

    func testFingerprintTellsDataApart() {
        var a = Fingerprint(), b = Fingerprint(), c = Fingerprint()
        a.add([Int32(1), 2, 3]); b.add([Int32(1), 2, 3]); c.add([Int32(1), 2, 4])
        XCTAssertEqual(a.hex, b.hex)
        XCTAssertNotEqual(a.hex, c.hex)
    }
}
