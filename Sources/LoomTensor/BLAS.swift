import COpenBLAS
import Foundation

/// OpenBLAS, opened on first use with its kernels chosen from cpuid.
///
/// OpenBLAS picks its kernels ("core type") once, when it initialises, from
/// `OPENBLAS_CORETYPE` or its own model table; Debian 12's 0.3.21 does not know Sapphire
/// Rapids and falls back to SSE3 kernels there (a fifth of the speed). So Loom does not link
/// it at build time: it reads cpuid, sets the core type, then `dlopen`s the library.
///
/// The core type, in order of precedence:
/// 1. `LOOM_BLAS_CORETYPE`: Loom's override, any name OpenBLAS knows (`Prescott`, `Haswell`,
///    `Zen`, `SkylakeX`, `Cooperlake`, …); a core the CPU cannot run is refused.
/// 2. `OPENBLAS_CORETYPE` set by the user: respected as it is, and reported.
/// 3. Automatic: `preferredCoreType(for:)`.
///
/// OpenBLAS 0.3.21 accepts a forced `SkylakeX` without checking the CPU (it would then stop
/// on an illegal instruction), hence the check of `LOOM_BLAS_CORETYPE` against cpuid.
///
/// `LOOM_BLAS_LIBRARY` names the library file when it is not the system's `libopenblas.so.0`.
public struct BLASLibrary: Sendable {
    /// How the core type was decided.
    public enum CoreSource: String, Sendable {
        case automatic = "cpuid"
        case loomOverride = "LOOM_BLAS_CORETYPE"
        case openBLASVariable = "OPENBLAS_CORETYPE"
        case openBLASTable = "openblas"
    }

    /// The library file (symbolic links resolved).
    public let path: String
    /// `openblas_get_config()`: version and build options, e.g. "OpenBLAS 0.3.21 … DYNAMIC_ARCH …".
    public let configuration: String
    /// `openblas_get_corename()`: the kernels in use.
    public let coreName: String
    /// The core type Loom asked for (nil: left to OpenBLAS's own table).
    public let requestedCore: String?
    public let coreSource: CoreSource

    /// The library this process uses; loaded by the first access.
    public static let shared = BLASLibrary.load()

    /// The fastest OpenBLAS 0.3.21 core type this CPU can run for Loom's fp32 products:
    /// `SkylakeX` with AVX-512 (also on AVX512-BF16 CPUs: `Cooperlake` adds only bf16 kernels,
    /// which Debian's build does not export; upstream OpenBLAS maps Zen 4 to these too),
    /// `Zen` or `Haswell` with AVX2+FMA, `Sandybridge` with AVX; nil (OpenBLAS decides) on
    /// anything older or not x86.
    public static func preferredCoreType(for cpu: CPUFeatures) -> String? {
        if cpu.hasAVX512 { return "SkylakeX" }
        if cpu.hasAVX2FMA { return cpu.isAMD ? "Zen" : "Haswell" }
        if cpu.avx { return "Sandybridge" }
        return nil
    }

    /// Every core type worth measuring on this CPU, best first (what `loom bench train`
    /// measures to find the fastest sgemm available).
    public static func runnableCoreTypes(for cpu: CPUFeatures) -> [String] {
        var cores: [String] = []
        if cpu.hasAVX512 { cores.append("SkylakeX") }
        if cpu.hasAVX512BF16 { cores.append("Cooperlake") }
        if cpu.hasAVX2FMA { cores += cpu.isAMD ? ["Zen", "Haswell"] : ["Haswell", "Zen"] }
        if cpu.avx { cores.append("Sandybridge") }
        cores.append("Prescott")
        return cores
    }

    /// Whether `core` would run on `cpu` (unknown names are left to OpenBLAS, which falls
    /// back to its own choice for names it does not know).
    public static func canRun(core: String, on cpu: CPUFeatures) -> Bool {
        switch core.lowercased() {
        case "skylakex", "cooperlake", "sapphirerapids": return cpu.hasAVX512
        case "haswell", "zen": return cpu.hasAVX2FMA
        case "sandybridge": return cpu.avx
        default: return true
        }
    }

    static func load() -> BLASLibrary {
        let environment = ProcessInfo.processInfo.environment
        let cpu = CPUFeatures.current
        var requested: String?
        let source: CoreSource
        if let override = environment["LOOM_BLAS_CORETYPE"], !override.isEmpty {
            guard canRun(core: override, on: cpu) else {
                fail("LOOM_BLAS_CORETYPE=\(override) needs instructions this CPU (\(cpu.modelName)) lacks; "
                     + "it can run: \(runnableCoreTypes(for: cpu).joined(separator: ", "))")
            }
            requested = override
            source = .loomOverride
        } else if let user = environment["OPENBLAS_CORETYPE"], !user.isEmpty {
            requested = user
            source = .openBLASVariable
        } else if let preferred = preferredCoreType(for: cpu) {
            requested = preferred
            source = .automatic
        } else {
            source = .openBLASTable
        }
        // Set the variable only while OpenBLAS initialises, so that child processes see
        // the user's environment, not Loom's choice.
        let previous = environment["OPENBLAS_CORETYPE"]
        if let requested, source != .openBLASVariable { setenv("OPENBLAS_CORETYPE", requested, 1) }
        defer {
            if source != .openBLASVariable {
                if let previous { setenv("OPENBLAS_CORETYPE", previous, 1) } else { unsetenv("OPENBLAS_CORETYPE") }
            }
        }
        let candidates: [String]
        if let path = environment["LOOM_BLAS_LIBRARY"], !path.isEmpty {
            candidates = [path]
        } else {
            #if os(macOS)
            candidates = ["libopenblas.dylib", "/opt/homebrew/opt/openblas/lib/libopenblas.dylib",
                          "/usr/local/opt/openblas/lib/libopenblas.dylib"]
            #else
            candidates = ["libopenblas.so.0", "libopenblas.so"]
            #endif
        }
        var errors: [String] = []
        for candidate in candidates {
            var message = [CChar](repeating: 0, count: 512)
            if loom_openblas_open(candidate, &message, UInt(message.count)) == 0 {
                let loaded = String(cString: loom_openblas_loaded_path())
                let coreName = String(cString: loom_openblas_get_corename())
                if let requested, requested.lowercased() != coreName.lowercased() {
                    // OpenBLAS silently uses its own choice for a name it does not know or a
                    // core the CPU lacks: say so, since the figures depend on it.
                    FileHandle.standardError.write(Data(
                        "loom: OpenBLAS was asked for core \(requested) (\(source.rawValue)) and chose \(coreName)\n".utf8))
                }
                return BLASLibrary(
                    path: URL(fileURLWithPath: loaded).resolvingSymlinksInPath().path,
                    configuration: String(cString: loom_openblas_get_config()).trimmingCharacters(in: .whitespaces),
                    coreName: coreName,
                    requestedCore: requested, coreSource: source)
            }
            errors.append(String(cString: message))
        }
        fail("Loom needs OpenBLAS (Debian: apt-get install libopenblas0, or scripts/install_dependencies.sh; "
             + "elsewhere set LOOM_BLAS_LIBRARY to the library file): " + errors.joined(separator: "; "))
    }

    private static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data(("loom: " + message + "\n").utf8))
        exit(2)
    }

    /// `openblas_get_config()` without the build options: "OpenBLAS 0.3.21".
    public var version: String {
        configuration.split(separator: " ").prefix(2).joined(separator: " ")
    }

    /// One line for logs: "OpenBLAS 0.3.21, core Zen (chosen from cpuid), /usr/lib/…".
    public var summary: String {
        let how: String
        switch coreSource {
        case .automatic: how = "chosen from cpuid"
        case .loomOverride: how = "forced by LOOM_BLAS_CORETYPE"
        case .openBLASVariable: how = "forced by OPENBLAS_CORETYPE"
        case .openBLASTable: how = "OpenBLAS's own choice"
        }
        return "\(version), core \(coreName) (\(how)), \(path)"
    }
}

/// Row-major single-precision GEMM: C = alpha · op(A) · op(B) + beta · C, where op(A) is
/// m×k and op(B) is k×n, on the calling thread (with bf16 inputs while a training stage runs
/// with `--precision bf16`: `MatrixProducts`). A single row (m = 1, every decoding step)
/// goes to sgemv, which streams the matrix once instead of packing it as sgemm does.
@inline(__always)
public func sgemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
    alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
) {
    if m == 0 || n == 0 { return }
    if MatrixProducts.precision == .bf16 {
        bf16Gemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                 b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        return
    }
    _ = BLASLibrary.shared
    if m == 1 {
        // c[1, n] = op(A)[1, k] · op(B)[k, n]: op(B)ᵀ · a, with a's elements one row apart
        // when A is transposed ([k, 1]).
        loom_cblas_sgemv(
            Int32(LoomCblasRowMajor), transposeB ? Int32(LoomCblasNoTrans) : Int32(LoomCblasTrans),
            transposeB ? Int32(n) : Int32(k), transposeB ? Int32(k) : Int32(n),
            alpha, b, Int32(ldb), a, transposeA ? Int32(lda) : 1, beta, c, 1)
        return
    }
    loom_cblas_sgemm(
        Int32(LoomCblasRowMajor),
        transposeA ? Int32(LoomCblasTrans) : Int32(LoomCblasNoTrans),
        transposeB ? Int32(LoomCblasTrans) : Int32(LoomCblasNoTrans),
        Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// How a product of m×k by k×n is split over `threads` threads: not at all when it is small
/// (a matrix–vector product is bound by reading B, so it pays to split much smaller ones), by
/// rows of C when there are enough of them, otherwise by columns.
enum ProductSplit {
    case none, rows, columns

    init(m: Int, n: Int, k: Int, threads: Int) {
        if threads == 1 || m * n * k < (m == 1 ? 1 << 15 : 1 << 18) { self = .none }
        else if m >= n || m >= 64 * threads { self = .rows }
        else { self = .columns }
    }
}

/// The same product split across `Threading.threadCount` threads (`ProductSplit`). Each thread
/// runs a single-threaded sgemm on its block, so the result equals the unsplit product up to
/// the order of no sums (each element of C is still computed by one dot product).
public func parallelSgemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
    alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
) {
    switch ProductSplit(m: m, n: n, k: k, threads: Threading.threadCount) {
    case .none:
        sgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
              a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    case .rows where MatrixProducts.precision == .bf16:
        // B is packed once for all threads, each packs its rows of A.
        bf16GemmPacked(.rows, transposeA: transposeA, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                       packedB: bf16PackB(transposeB: transposeB, n: n, k: k, b: b, ldb: ldb), beta: beta, c: c, ldc: ldc)
    case .rows:
        // Split rows of C: rows of op(A) are rows of A (no transpose) or columns of A.
        parallelRanges(m, minimumChunk: 16) { rows in
            let aBlock = transposeA ? a + rows.lowerBound : a + rows.lowerBound * lda
            sgemm(transposeA: transposeA, transposeB: transposeB, m: rows.count, n: n, k: k, alpha: alpha,
                  a: aBlock, lda: lda, b: b, ldb: ldb, beta: beta, c: c + rows.lowerBound * ldc, ldc: ldc)
        }
    case .columns:
        // Split columns of C: columns of op(B) are columns of B (no transpose) or rows of B.
        // (In bf16 each thread packs its own block of B, which for a few rows is most of the work.)
        parallelRanges(n, minimumChunk: 16) { cols in
            let bBlock = transposeB ? b + cols.lowerBound * ldb : b + cols.lowerBound
            sgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: cols.count, k: k, alpha: alpha,
                  a: a, lda: lda, b: bBlock, ldb: ldb, beta: beta, c: c + cols.lowerBound, ldc: ldc)
        }
    }
}

/// Measures this process's sgemm: the best of `repeats` `size`³ products split over
/// `Threading.threadCount` threads, in GFLOP/s (2·size³ FLOPs each).
public func measureSgemmGFLOPs(size: Int = 1024, repeats: Int = 5) -> Double {
    let a = Storage(count: size * size), b = Storage(count: size * size), c = Storage(count: size * size)
    for i in 0..<(size * size) { a.pointer[i] = Float(i % 7) * 0.01; b.pointer[i] = Float(i % 5) * 0.01 }
    func product() {
        parallelSgemm(transposeA: false, transposeB: true, m: size, n: size, k: size, a: a.pointer, lda: size,
                      b: b.pointer, ldb: size, beta: 0, c: c.pointer, ldc: size)
    }
    product()
    var best = Double.infinity
    for _ in 0..<repeats {
        let start = DispatchTime.now().uptimeNanoseconds
        product()
        best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
    }
    return 2 * Double(size * size * size) / best / 1e9
}
