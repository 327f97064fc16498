import Dispatch
import Foundation
import XCTest
@testable import LoomTensor

final class ThreadPoolTests: XCTestCase {
    override func tearDown() { Threading.configure(threads: 1) }

    /// Restarting the workers and handing them a job at once is the moment a worker may not
    /// have started yet. Each job must still run every index exactly once and return; the
    /// loop runs on its own thread so that a lost job fails this test instead of hanging the run.
    func testJobsRightAfterRestartingTheWorkersRunEveryIndexOnce() {
        let rounds = 400, count = 16
        var failures: [String] = []
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            for round in 0..<rounds {
                Threading.configure(threads: 2 + round % 3)
                let hits = UnsafeMutablePointer<Int>.allocate(capacity: count)
                hits.initialize(repeating: 0, count: count)
                parallelFor(count) { i in hits[i] += 1 }
                let seen = (0..<count).map { hits[$0] }
                hits.deallocate()
                if seen != Array(repeating: 1, count: count) {
                    failures.append("round \(round): indices ran \(seen) times")
                }
            }
            done.signal()
        }
        thread.stackSize = 1 << 22
        thread.start()
        if done.wait(timeout: .now() + 120) == .timedOut {
            // The pool is stuck for good (every later configure would wait for it), so end the
            // test process here with the reason rather than hang the rest of the run.
            FileHandle.standardError.write(Data(
                "ThreadPoolTests: a job handed to freshly started workers never finished (waited 120 s)\n".utf8))
            exit(1)
        }
        XCTAssertEqual(failures, [])
    }
}
