import CLoomCPU
import Foundation

/// The processor Loom runs on, read once from cpuid and xgetbv: vendor, family and model,
/// the model name, and the vector extensions that both the CPU has and the operating system
/// saves the registers of (an instruction is usable only when both hold).
///
///     let cpu = CPUFeatures.current
///     print(cpu.modelName, cpu.featureNames)   // "AMD EPYC 7B13 …" ["avx", "avx2", "fma", "f16c"]
public struct CPUFeatures: Sendable, Equatable {
    public var vendor: String
    public var modelName: String
    public var family: Int
    public var model: Int
    public var stepping: Int
    public var avx: Bool
    public var avx2: Bool
    public var fma: Bool
    public var f16c: Bool
    public var avx512f: Bool
    public var avx512dq: Bool
    public var avx512cd: Bool
    public var avx512bw: Bool
    public var avx512vl: Bool
    public var avx512vnni: Bool
    public var avx512bf16: Bool
    public var avx512fp16: Bool
    public var avxVnni: Bool
    public var amxTile: Bool
    public var amxBF16: Bool
    public var amxInt8: Bool

    /// The processor this process runs on.
    public static let current = CPUFeatures(detecting: ())

    /// The size of the last-level cache one core shares with its neighbours, in bytes, or
    /// 32 MiB when the system does not say. Linux's sysfs describes the cache instance the
    /// core actually uses (`/sys/devices/system/cpu/cpu0/cache/index*/`); glibc's
    /// `sysconf(_SC_LEVEL3_CACHE_SIZE)` is only the fallback, because it can report a whole
    /// socket's L3 (256 MiB on an AMD EPYC whose cores each see a 32 MiB slice), which made a
    /// 110 MB model look cache-resident.
    public static let lastLevelCacheBytes: Int = {
        #if os(Linux)
        if let bytes = lastLevelCacheBytes(sysfsCacheDirectory: "/sys/devices/system/cpu/cpu0/cache") { return bytes }
        let l3 = sysconf(Int32(_SC_LEVEL3_CACHE_SIZE))
        if l3 > 0 { return l3 }
        #endif
        return 32 << 20
    }()

    /// The size of the highest-level data or unified cache described under `directory`
    /// (`index0`, `index1`, … each with `level`, `type` and `size` files), or nil when none is.
    static func lastLevelCacheBytes(sysfsCacheDirectory directory: String) -> Int? {
        func read(_ path: String) -> String? {
            guard let data = FileManager.default.contents(atPath: path) else { return nil }
            return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        var best: (level: Int, bytes: Int)?
        for index in 0..<16 {
            let entry = "\(directory)/index\(index)"
            guard let levelText = read("\(entry)/level"), let level = Int(levelText),
                  let type = read("\(entry)/type"), type == "Data" || type == "Unified",
                  let sizeText = read("\(entry)/size"), let bytes = cacheSizeBytes(sizeText) else { continue }
            if level > best?.level ?? 0 { best = (level, bytes) }
        }
        return best?.bytes
    }

    /// A sysfs cache size ("32768K", "1M", "512") in bytes, or nil when it is not one.
    static func cacheSizeBytes(_ text: String) -> Int? {
        var digits = Substring(text)
        var unit = 1
        switch digits.last {
        case "K": unit = 1 << 10; digits = digits.dropLast()
        case "M": unit = 1 << 20; digits = digits.dropLast()
        case "G": unit = 1 << 30; digits = digits.dropLast()
        default: break
        }
        guard let value = Int(digits), value > 0, value <= (1 << 40) / unit else { return nil }
        return value * unit
    }

    init(detecting: Void) {
        var info = LoomCPUInfo()
        loom_cpu_detect(&info)
        func string<T>(_ tuple: T) -> String {
            withUnsafeBytes(of: tuple) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
        }
        let ymm = info.osSavesAVX, zmm = info.osSavesAVX && info.osSavesAVX512
        vendor = string(info.vendor)
        modelName = string(info.modelName)
        family = Int(info.family)
        model = Int(info.model)
        stepping = Int(info.stepping)
        avx = info.avx && ymm
        avx2 = info.avx2 && ymm
        fma = info.fma && ymm
        f16c = info.f16c && ymm
        avx512f = info.avx512f && zmm
        avx512dq = info.avx512dq && zmm
        avx512cd = info.avx512cd && zmm
        avx512bw = info.avx512bw && zmm
        avx512vl = info.avx512vl && zmm
        avx512vnni = info.avx512vnni && zmm
        avx512bf16 = info.avx512bf16 && zmm
        avx512fp16 = info.avx512fp16 && zmm
        avxVnni = info.avxVnni && ymm
        amxTile = info.amxTile && info.osSavesAMX
        amxBF16 = info.amxBF16 && info.osSavesAMX
        amxInt8 = info.amxInt8 && info.osSavesAMX
    }

    /// AVX2 with FMA: what Loom's kernels are compiled for (`-mavx2 -mfma`).
    public var hasAVX2FMA: Bool { avx2 && fma }
    /// The AVX-512 subset of Skylake-SP and later (F, DQ, CD, BW, VL), usable by this process.
    public var hasAVX512: Bool { avx512f && avx512dq && avx512cd && avx512bw && avx512vl }
    /// AVX-512 with the bf16 dot product (`vdpbf16ps`): Cooper Lake, Sapphire Rapids, Zen 4.
    public var hasAVX512BF16: Bool { hasAVX512 && avx512bf16 }
    public var isAMD: Bool { vendor == "AuthenticAMD" || vendor == "HygonGenuine" }
    public var isIntel: Bool { vendor == "GenuineIntel" }

    /// The usable extensions, in Linux's /proc/cpuinfo spelling.
    public var featureNames: [String] {
        let all: [(String, Bool)] = [
            ("avx", avx), ("avx2", avx2), ("fma", fma), ("f16c", f16c),
            ("avx512f", avx512f), ("avx512dq", avx512dq), ("avx512cd", avx512cd), ("avx512bw", avx512bw),
            ("avx512vl", avx512vl), ("avx512_vnni", avx512vnni), ("avx512_bf16", avx512bf16),
            ("avx512_fp16", avx512fp16), ("avx_vnni", avxVnni),
            ("amx_tile", amxTile), ("amx_bf16", amxBF16), ("amx_int8", amxInt8),
        ]
        return all.filter(\.1).map(\.0)
    }

    /// Single-precision FLOPs one core can issue per cycle with fused multiply-adds:
    /// 2 (multiply + add) × vector lanes × FMA units. An estimate from the vector width and
    /// the usual unit count: two 512-bit FMA units on Intel AVX-512 servers (some parts
    /// have one), two 256-bit units on Haswell and later and on Zen (Zen 4 runs AVX-512 on
    /// them in two halves), mul and add on separate units before FMA.
    public var estimatedFMAFLOPsPerCycle: Double {
        if hasAVX512 && isIntel { return 2 * 16 * 2 }
        if hasAVX2FMA || hasAVX512 { return 2 * 8 * 2 }
        if avx { return 8 * 2 }
        return 4 * 2
    }

    /// The clock in GHz that /proc/cpuinfo reports for the first core (Linux; nil elsewhere).
    /// Under a hypervisor this is often the nominal clock, not the boost clock.
    public static func reportedClockGHz() -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("cpu MHz") {
            if let value = line.split(separator: ":").last.flatMap({ Double($0.trimmingCharacters(in: .whitespaces)) }) {
                return value / 1000
            }
        }
        return nil
    }

    /// The estimated FMA peak of one core in GFLOP/s (FLOPs per cycle × the reported clock).
    public var estimatedPeakGFLOPsPerCore: Double? {
        CPUFeatures.reportedClockGHz().map { $0 * estimatedFMAFLOPsPerCycle }
    }
}

/// The instruction sets of Loom's own C kernels (the quantized dot products and the
/// batch-invariant products), chosen once per process: the widest this CPU and its operating
/// system support, or `LOOM_CPU_KERNELS` (`avx512`, `avx2` or `portable`), which forces a
/// narrower one (to compare them, or to keep the AVX2 path in use on an AVX-512 machine).
/// A level the CPU cannot run, or an unknown name, stops the process with an error that says
/// which levels it can run. The Swift kernels are compiled for AVX2 and are not affected.
public enum KernelLevel: Int, Sendable, Comparable, CaseIterable {
    case portable = 0
    case avx2 = 1
    /// AVX-512 F, DQ, CD, BW and VL (the quantized kernels also need VNNI, else they use AVX2).
    case avx512 = 2

    public static func < (a: KernelLevel, b: KernelLevel) -> Bool { a.rawValue < b.rawValue }

    public var name: String {
        switch self {
        case .portable: return "portable"
        case .avx2: return "avx2"
        case .avx512: return "avx512"
        }
    }

    /// The widest level `cpu` can run.
    public static func widest(for cpu: CPUFeatures) -> KernelLevel {
        if cpu.hasAVX512 && cpu.hasAVX2FMA && cpu.f16c { return .avx512 }
        if cpu.hasAVX2FMA && cpu.f16c { return .avx2 }
        return .portable
    }

    /// The level chosen from `LOOM_CPU_KERNELS` (nil or empty: the widest), or the error for
    /// a value that names no level or one `cpu` cannot run.
    public static func chosen(setting: String?, cpu: CPUFeatures) -> Result<KernelLevel, KernelLevelError> {
        let widest = widest(for: cpu)
        guard let setting, !setting.isEmpty else { return .success(widest) }
        let runnable = allCases.filter { $0 <= widest }.map(\.name).joined(separator: ", ")
        guard let level = allCases.first(where: { $0.name == setting.lowercased() }) else {
            return .failure(KernelLevelError(message: "LOOM_CPU_KERNELS=\(setting) is not a kernel level; use one of: \(runnable)"))
        }
        guard level <= widest else {
            return .failure(KernelLevelError(message: "LOOM_CPU_KERNELS=\(setting) needs instructions this CPU "
                                             + "(\(cpu.modelName)) lacks; it can run: \(runnable)"))
        }
        return .success(level)
    }

    /// This process's level.
    public static let current: KernelLevel = {
        switch chosen(setting: ProcessInfo.processInfo.environment["LOOM_CPU_KERNELS"], cpu: .current) {
        case .success(let level): return level
        case .failure(let error):
            FileHandle.standardError.write(Data(("loom: " + error.message + "\n").utf8))
            exit(2)
        }
    }()
}

public struct KernelLevelError: Error, Equatable {
    public let message: String
}
