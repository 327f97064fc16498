import Foundation
import XCTest
@testable import LoomTensor

/// The product every BLAS check computes: deterministic inputs, shapes that exercise
/// packing edges (not multiples of any kernel's block).
private func referenceProduct(m: Int = 67, n: Int = 45, k: Int = 131) -> [Float] {
    let a = Storage(count: m * k), b = Storage(count: k * n), c = Storage(count: m * n)
    for i in 0..<(m * k) { a.pointer[i] = Float((i * 7) % 13) * 0.1 - 0.6 }
    for i in 0..<(k * n) { b.pointer[i] = Float((i * 5) % 11) * 0.1 - 0.5 }
    sgemm(transposeA: false, transposeB: false, m: m, n: n, k: k, a: a.pointer, lda: k,
          b: b.pointer, ldb: n, beta: 0, c: c.pointer, ldc: n)
    return Array(c.buffer)
}

final class BLASLibraryTests: XCTestCase {
    func testCPUFeaturesAgreeWithProcCpuinfo() throws {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else {
            throw XCTSkip("no /proc/cpuinfo on this system")
        }
        let lines = text.split(separator: "\n")
        let flags = Set(lines.first { $0.hasPrefix("flags") }!.split(separator: ":")[1].split(separator: " ").map(String.init))
        let modelName = lines.first { $0.hasPrefix("model name") }!.split(separator: ":", maxSplits: 1)[1]
            .trimmingCharacters(in: .whitespaces)
        let cpu = CPUFeatures.current
        XCTAssertEqual(cpu.modelName, modelName)
        // Linux lists a flag only when the kernel enables its state, as CPUFeatures requires.
        for name in ["avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_bf16", "amx_tile"] {
            XCTAssertEqual(cpu.featureNames.contains(name), flags.contains(name), name)
        }
        XCTAssertFalse(cpu.vendor.isEmpty)
    }

    func testPreferredCoreTypeFollowsTheVectorExtensions() {
        var cpu = CPUFeatures.current
        for flag in [\CPUFeatures.avx, \.avx2, \.fma, \.avx512f, \.avx512dq, \.avx512cd, \.avx512bw, \.avx512vl, \.avx512bf16] {
            cpu[keyPath: flag] = false
        }
        cpu.vendor = "GenuineIntel"
        XCTAssertNil(BLASLibrary.preferredCoreType(for: cpu))
        cpu.avx = true
        XCTAssertEqual(BLASLibrary.preferredCoreType(for: cpu), "Sandybridge")
        cpu.avx2 = true; cpu.fma = true
        XCTAssertEqual(BLASLibrary.preferredCoreType(for: cpu), "Haswell")
        cpu.vendor = "AuthenticAMD"
        XCTAssertEqual(BLASLibrary.preferredCoreType(for: cpu), "Zen")
        cpu.avx512f = true; cpu.avx512dq = true; cpu.avx512cd = true; cpu.avx512bw = true
        XCTAssertEqual(BLASLibrary.preferredCoreType(for: cpu), "Zen", "AVX-512 without VL is not SkylakeX's set")
        cpu.avx512vl = true
        XCTAssertEqual(BLASLibrary.preferredCoreType(for: cpu), "SkylakeX")
        cpu.avx512bf16 = true
        XCTAssertEqual(BLASLibrary.preferredCoreType(for: cpu), "SkylakeX", "Cooperlake adds only bf16 kernels")
        XCTAssertEqual(BLASLibrary.runnableCoreTypes(for: cpu).prefix(2), ["SkylakeX", "Cooperlake"])
        cpu.avx512f = false
        XCTAssertFalse(BLASLibrary.canRun(core: "SkylakeX", on: cpu))
        XCTAssertTrue(BLASLibrary.canRun(core: "haswell", on: cpu))
    }

    func testKernelLevelFollowsTheCPUAndTheSetting() {
        var cpu = CPUFeatures.current
        for flag in [\CPUFeatures.avx2, \.fma, \.f16c, \.avx512f, \.avx512dq, \.avx512cd, \.avx512bw, \.avx512vl] {
            cpu[keyPath: flag] = true
        }
        XCTAssertEqual(KernelLevel.widest(for: cpu), .avx512)
        XCTAssertEqual(try KernelLevel.chosen(setting: nil, cpu: cpu).get(), .avx512)
        XCTAssertEqual(try KernelLevel.chosen(setting: "", cpu: cpu).get(), .avx512)
        XCTAssertEqual(try KernelLevel.chosen(setting: "AVX2", cpu: cpu).get(), .avx2)
        XCTAssertEqual(try KernelLevel.chosen(setting: "portable", cpu: cpu).get(), .portable)
        guard case .failure(let unknown) = KernelLevel.chosen(setting: "sse9", cpu: cpu) else { return XCTFail("sse9 accepted") }
        XCTAssertEqual(unknown.message, "LOOM_CPU_KERNELS=sse9 is not a kernel level; use one of: portable, avx2, avx512")
        cpu.avx512vl = false
        XCTAssertEqual(KernelLevel.widest(for: cpu), .avx2, "AVX-512 without VL is not the level's set")
        guard case .failure(let lacking) = KernelLevel.chosen(setting: "avx512", cpu: cpu) else { return XCTFail("avx512 accepted") }
        XCTAssertTrue(lacking.message.hasPrefix("LOOM_CPU_KERNELS=avx512 needs instructions this CPU"), lacking.message)
        XCTAssertTrue(lacking.message.hasSuffix("it can run: portable, avx2"), lacking.message)
        cpu.fma = false
        XCTAssertEqual(KernelLevel.widest(for: cpu), .portable)
        // This process: the widest level unless LOOM_CPU_KERNELS narrows it.
        let setting = ProcessInfo.processInfo.environment["LOOM_CPU_KERNELS"]
        XCTAssertEqual(KernelLevel.current, try KernelLevel.chosen(setting: setting, cpu: .current).get())
    }

    func testLoadedCoreIsTheAutomaticChoice() throws {
        let environment = ProcessInfo.processInfo.environment
        if environment["LOOM_BLAS_CORETYPE"] != nil || environment["OPENBLAS_CORETYPE"] != nil {
            throw XCTSkip("a core type is forced in this environment")
        }
        let blas = BLASLibrary.shared
        XCTAssertEqual(blas.coreSource, BLASLibrary.preferredCoreType(for: .current) == nil ? .openBLASTable : .automatic)
        if let preferred = BLASLibrary.preferredCoreType(for: .current) {
            XCTAssertEqual(blas.coreName.lowercased(), preferred.lowercased())
        }
        XCTAssertTrue(blas.configuration.hasPrefix("OpenBLAS"), blas.configuration)
        XCTAssertNil(environment["OPENBLAS_CORETYPE"], "Loom's choice must not leak into the environment")
    }

    /// OpenBLAS picks its kernels once per process, so the forced cores run in child processes
    /// (this test binary, running only `testChildProcessReportsItsCore`).
    func testForcedCoresAreUsedAndComputeTheSameProduct() throws {
        let here = referenceProduct()
        for (variable, core) in [("LOOM_BLAS_CORETYPE", "Prescott"), ("OPENBLAS_CORETYPE", "Sandybridge")] {
            let report = try runChild(variable: variable, core: core)
            XCTAssertEqual(report["core"] as? String, core)
            XCTAssertEqual(report["source"] as? String, variable)
            let values = try XCTUnwrap(report["values"] as? [Double])
            XCTAssertEqual(values.count, here.count)
            for (x, y) in zip(values, here) { XCTAssertEqual(Float(x), y, accuracy: 1e-4 * max(1, abs(y))) }
        }
    }

    func testChildProcessReportsItsCore() throws {
        guard let out = ProcessInfo.processInfo.environment["LOOM_TEST_BLAS_REPORT"] else {
            throw XCTSkip("runs as the child of testForcedCoresAreUsedAndComputeTheSameProduct")
        }
        let blas = BLASLibrary.shared
        let object: [String: Any] = ["core": blas.coreName, "source": blas.coreSource.rawValue,
                                     "values": referenceProduct().map(Double.init)]
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: out))
    }

    private func runChild(variable: String, core: String) throws -> [String: Any] {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("loom-blas-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: out) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        process.arguments = ["LoomTensorTests.BLASLibraryTests/testChildProcessReportsItsCore"]
        var environment = ProcessInfo.processInfo.environment
        environment["LOOM_BLAS_CORETYPE"] = nil
        environment["OPENBLAS_CORETYPE"] = nil
        environment[variable] = core
        environment["LOOM_TEST_BLAS_REPORT"] = out.path
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "child test process with \(variable)=\(core)")
        let data = try Data(contentsOf: out)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func testSingleRowProductsMatchADirectSum() {
        // m = 1 goes through sgemv; every transpose combination, with strided A when transposed.
        let n = 37, k = 53, lda = 3
        let aValues = (0..<(k * lda)).map { Float(($0 * 3) % 17) * 0.05 - 0.4 }
        let bValues = (0..<(n * k)).map { Float(($0 * 7) % 19) * 0.05 - 0.45 }
        for transposeA in [false, true] {
            for transposeB in [false, true] {
                let c = Storage(count: n)
                for j in 0..<n { c.pointer[j] = Float(j) }
                aValues.withUnsafeBufferPointer { a in
                    bValues.withUnsafeBufferPointer { b in
                        sgemm(transposeA: transposeA, transposeB: transposeB, m: 1, n: n, k: k, alpha: 0.5,
                              a: a.baseAddress!, lda: transposeA ? lda : k, b: b.baseAddress!, ldb: transposeB ? k : n,
                              beta: 2, c: c.pointer, ldc: n)
                    }
                }
                for j in 0..<n {
                    var sum: Float = 0
                    for i in 0..<k {
                        let a = transposeA ? aValues[i * lda] : aValues[i]
                        let b = transposeB ? bValues[j * k + i] : bValues[i * n + j]
                        sum += a * b
                    }
                    XCTAssertEqual(c.pointer[j], 0.5 * sum + 2 * Float(j), accuracy: 1e-4, "A\(transposeA) B\(transposeB) column \(j)")
                }
            }
        }
    }

    func testCausalAttentionKeysPerRowCountsTheBlocksTheKernelComputes() {
        XCTAssertEqual(causalAttentionKeysPerRow(sequence: 256), 160)
        XCTAssertEqual(causalAttentionKeysPerRow(sequence: 64), 64)
        XCTAssertEqual(causalAttentionKeysPerRow(sequence: 100), Double(64 * 64 + 36 * 100) / 100)
        XCTAssertEqual(causalAttentionKeysPerRow(sequence: 0), 0)
    }
}
