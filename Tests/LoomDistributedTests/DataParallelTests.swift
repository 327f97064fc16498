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
            func startAllReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) -> PendingReduction { CompletedReduction() }
        }
        let slices = try (0..<3).map { try DataParallel(FakeRank($0, of: 3)).localSlice(Array(0..<6)) }
        XCTAssertEqual(slices, [[0, 1], [2, 3], [4, 5]])
        XCTAssertThrowsError(try DataParallel(FakeRank(0, of: 4)).localRows(globalBatch: 6)) { error in
            XCTAssertTrue("\(error)".contains("global batch of 6 does not divide by 4 ranks"), "\(error)")
        }
    }

    /// The tape reports each watched gradient once no op left to run backward adds to it: an
    /// unread parameter first, then each one after the backward of its earliest reader (a
    /// reshaped view counts as its parameter), with its final value at that moment.
    func testTapeReportsEachGradientWhenItIsFinal() {
        let store = ParameterStore([("early", [2]), ("late", [2]), ("unused", [2])])
        for i in 0..<6 { store.values.pointer[i] = Float(i + 1) }
        let early = store["early"], late = store["late"]
        let tape = Tape()
        var reports: [(Int, [Float])] = []
        tape.watchGradients(of: store.entries.map(\.tensor)) { i in reports.append((i, store.entries[i].tensor.gradScalars ?? [])) }
        let loss = tape.record {
            let h = mul(early.reshaped([1, 2]).reshaped([2]), early)      // early read by the first op (through views)
            let y = add(h, late)                                           // late read only here
            return sum(mul(y, early))                                      // early read again, later
        }
        tape.backward(from: loss)
        XCTAssertEqual(reports.map(\.0), [2, 1, 0])
        XCTAssertEqual(reports[1].1, late.gradScalars)
        XCTAssertEqual(reports[2].1, early.gradScalars)
        // d/d early of Σ (e² + l)·e = 3e² + l: final only after the first op's backward.
        XCTAssertEqual(early.gradScalars, [3 * 1 + 3, 3 * 4 + 4])
    }

    /// Buckets hold whole parameters, the last ones first, contiguous and covering the buffer;
    /// in a group of one, finishing leaves the gradients as they are.
    func testOverlapBucketsCoverTheParametersInReverse() {
        let store = ParameterStore([("a", [3]), ("b", [5]), ("c", [2]), ("d", [4])])
        let overlap = OverlappedGradientReduction(parallel: DataParallel(SingleProcessCommunicator()), parameters: store, bucketElements: 6)
        XCTAssertEqual(overlap.buckets, [8..<14, 0..<8])
        XCTAssertEqual(OverlappedGradientReduction(parallel: DataParallel(SingleProcessCommunicator()), parameters: store,
                                                   bucketElements: 1).buckets, [10..<14, 8..<10, 3..<8, 0..<3])
        for i in 0..<14 { store.gradients.pointer[i] = Float(i) }
        let tape = Tape()
        overlap.watch(tape)
        XCTAssertTrue(overlap.isArmed)
        tape.backward(from: tape.record { sum(store["b"]) })
        overlap.finish()
        XCTAssertFalse(overlap.isArmed)
        XCTAssertEqual(Array(store.gradients.buffer), (0..<14).map { Float($0) + ((3..<8).contains($0) ? 1 : 0) })
    }

    func testFingerprintTellsDataApart() {
        var a = Fingerprint(), b = Fingerprint(), c = Fingerprint()
        a.add([Int32(1), 2, 3]); b.add([Int32(1), 2, 3]); c.add([Int32(1), 2, 4])
        XCTAssertEqual(a.hex, b.hex)
        XCTAssertNotEqual(a.hex, c.hex)
    }
}
