import Foundation
import LoomTensor

/// What a benchmark's figures stand on: the CPU, the BLAS and its kernels, the sgemm rate
/// measured now, the fastest sgemm this machine offers (every runnable OpenBLAS core type,
/// each measured in a child process, since OpenBLAS picks its kernels once per process),
/// and an estimated FMA peak.
struct MachineReport {
    let cpu = CPUFeatures.current
    let blas = BLASLibrary.shared
    let threads: Int
    /// sgemm GFLOP/s of this process (its loaded kernels) on `threads` threads.
    let sgemmGFLOPs: Double
    /// sgemm GFLOP/s per OpenBLAS core type, this process's included.
    let sgemmGFLOPsByCore: [String: Double]
    let clockGHz: Double? = CPUFeatures.reportedClockGHz()

    /// Measures this process's sgemm, and unless `sweepCores` is false every other core
    /// type the CPU can run.
    init(threads: Int, sweepCores: Bool = true) {
        self.threads = threads
        Threading.configure(threads: threads)
        sgemmGFLOPs = measureSgemmGFLOPs()
        var byCore = [blas.coreName: sgemmGFLOPs]
        if sweepCores {
            for core in BLASLibrary.runnableCoreTypes(for: CPUFeatures.current)
            where core != "Prescott" && byCore.keys.allSatisfy({ $0.lowercased() != core.lowercased() }) {
                if let rate = MachineReport.measureInChildProcess(core: core, threads: threads) { byCore[core] = rate }
            }
        }
        sgemmGFLOPsByCore = byCore
    }

    var best: (core: String, gflops: Double) {
        let top = sgemmGFLOPsByCore.max { $0.value < $1.value }!
        return (top.key, top.value)
    }

    /// Threads × the estimated per-core FMA peak, when the clock can be read.
    var estimatedPeakGFLOPs: Double? {
        clockGHz.map { Double(threads) * $0 * cpu.estimatedFMAFLOPsPerCycle }
    }

    var peakBasis: String {
        let clock = clockGHz.map { String(format: "%.2f GHz (/proc/cpuinfo)", $0) } ?? "clock unknown"
        return "estimate: \(threads) core(s) × \(Int(cpu.estimatedFMAFLOPsPerCycle)) FLOP/cycle (2 × lanes × FMA units) × \(clock)"
    }

    /// Runs `loom bench sgemm` with the core type forced and reads its rate.
    static func measureInChildProcess(core: String, threads: Int) -> Double? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        process.arguments = ["bench", "sgemm", "--threads", String(threads), "--json"]
        var environment = ProcessInfo.processInfo.environment
        environment["LOOM_BLAS_CORETYPE"] = core
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0,
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              (object["core"] as? String)?.lowercased() == core.lowercased() else { return nil }
        return object["sgemm_gflops"] as? Double
    }

    var jsonObject: [String: Any] {
        var object: [String: Any] = [
            "cpu": [
                "model_name": cpu.modelName, "vendor": cpu.vendor, "family": cpu.family, "model": cpu.model,
                "features": cpu.featureNames, "clock_ghz": clockGHz ?? NSNull(),
            ] as [String: Any],
            "blas": [
                "library": blas.version, "config": blas.configuration, "path": blas.path,
                "core": blas.coreName, "core_source": blas.coreSource.rawValue,
                "requested_core": blas.requestedCore ?? NSNull(),
            ] as [String: Any],
            "kernels": ["level": KernelLevel.current.name, "quantized": "\(QuantizedKernel.best)"] as [String: Any],
            "sgemm_gflops": sgemmGFLOPs,
            "sgemm_gflops_per_thread": sgemmGFLOPs / Double(threads),
            "sgemm_gflops_by_core": sgemmGFLOPsByCore,
            "best_sgemm_core": best.core,
            "best_sgemm_gflops": best.gflops,
            "fma_peak_basis": peakBasis,
        ]
        object["fma_peak_gflops_estimate"] = estimatedPeakGFLOPs ?? NSNull()
        return object
    }

    var lines: [String] {
        let cores = sgemmGFLOPsByCore.sorted { $0.value > $1.value }
            .map { String(format: "%@ %.1f", $0.key, $0.value) }.joined(separator: ", ")
        return [
            "cpu: \(cpu.modelName) (\(cpu.vendor) family \(cpu.family) model \(cpu.model)): \(cpu.featureNames.joined(separator: " "))",
            "blas: \(blas.summary)",
            "Loom's C kernels: \(KernelLevel.current.name) (quantized: \(QuantizedKernel.best)); LOOM_CPU_KERNELS narrows them",
            String(format: "sgemm 1024³ on %d thread(s): %.1f GFLOP/s (%.1f per thread) with %@; by core: %@",
                   threads, sgemmGFLOPs, sgemmGFLOPs / Double(threads), blas.coreName, cores),
            estimatedPeakGFLOPs.map { String(format: "FMA peak %.0f GFLOP/s (%@)", $0, peakBasis) } ?? "FMA peak: \(peakBasis)",
        ]
    }
}
