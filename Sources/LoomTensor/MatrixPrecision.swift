import CLoomCPU
import Foundation

/// The precision of the matrix products of training: every product that goes through
/// `sgemm` (linear layers forward and backward, attention's scores and weighted sums, LoRA).
///
/// - `fp32`: float32 inputs, float32 accumulation (OpenBLAS), the default.
/// - `bf16`: the inputs rounded to bfloat16, products accumulated in float32, as PyTorch's
///   `torch.autocast("cpu", dtype=torch.bfloat16)` runs its matrix products. Weights, their
///   gradients, the optimizer state and every other operation (RMSNorm, softmax, SwiGLU,
///   cross-entropy, AdamW) stay float32. Each element is one dot product in increasing k
///   (`LoomBF16.h`), so the result does not depend on how a product is split over threads.
public enum MatrixPrecision: String, CaseIterable, Codable, Sendable, CustomStringConvertible {
    case fp32
    case bf16

    public var description: String { rawValue }
}

public struct MatrixPrecisionError: Error, Equatable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

/// How this process computes bf16 products, if it can.
public enum BF16Implementation: Equatable, Sendable {
    /// AVX512-BF16's `vdpbf16ps`: two bfloat16 multiply-adds per float32 lane and instruction.
    case native
    /// `LOOM_BF16_EMULATION=1` on a CPU without AVX512-BF16: the same rounding and the same
    /// order of float32 additions, computed with float32 vector code (the same bits as the
    /// native kernel, slower than fp32). For checking bf16's numerics, not for speed.
    case emulated(KernelLevel)

    var code: Int32 {
        switch self {
        case .native: return Int32(LOOM_BF16_NATIVE)
        case .emulated(let level): return level >= .avx2 ? Int32(LOOM_BF16_EMULATED_AVX2) : Int32(LOOM_BF16_EMULATED_PORTABLE)
        }
    }

    public var name: String {
        switch self {
        case .native: return "avx512_bf16 (vdpbf16ps)"
        case .emulated(let level): return "emulated with \(level.name) float32 code, LOOM_BF16_EMULATION=1"
        }
    }

    /// The implementation `cpu` offers at `level`, given `LOOM_BF16_EMULATION` (`emulation`),
    /// or the error that says why bf16 is unavailable.
    public static func chosen(cpu: CPUFeatures, level: KernelLevel, emulation: String?) -> Result<BF16Implementation, MatrixPrecisionError> {
        let emulate: Bool
        switch emulationSetting(emulation) {
        case .success(let value): emulate = value
        case .failure(let error): return .failure(error)
        }
        if emulate { return .success(.emulated(level)) }
        if cpu.hasAVX512BF16 && level == .avx512 { return .success(.native) }
        let reason = cpu.hasAVX512BF16
            ? "LOOM_CPU_KERNELS=\(level.name) excludes the AVX-512 kernels that bf16 needs"
            : "bf16 products need AVX512-BF16 (vdpbf16ps), which this CPU (\(cpu.modelName)) lacks"
        return .failure(MatrixPrecisionError(message: "--precision bf16: \(reason). Train in fp32 (the default), "
            + "or set LOOM_BF16_EMULATION=1 to check bf16's numerics with the same rounding computed in float32 (slower than fp32)"))
    }

    /// `LOOM_BF16_EMULATION`: unset, empty or 0 (off), or 1.
    static func emulationSetting(_ text: String?) -> Result<Bool, MatrixPrecisionError> {
        switch text {
        case nil, "", "0": return .success(false)
        case "1": return .success(true)
        case let other?:
            return .failure(MatrixPrecisionError(message: "LOOM_BF16_EMULATION=\(other) must be 1 (emulate bf16 products) or 0"))
        }
    }

    /// The error for a `LOOM_BF16_EMULATION` value that is neither 0 nor 1 (checked at start).
    public static var settingError: MatrixPrecisionError? {
        if case .failure(let error) = emulationSetting(ProcessInfo.processInfo.environment["LOOM_BF16_EMULATION"]) { return error }
        return nil
    }

    /// This process's implementation, or why there is none.
    public static let current: Result<BF16Implementation, MatrixPrecisionError> =
        chosen(cpu: .current, level: .current, emulation: ProcessInfo.processInfo.environment["LOOM_BF16_EMULATION"])
}

/// The precision `sgemm` uses, set by a training stage (`use(_:)`) for its whole run.
public enum MatrixProducts {
    nonisolated(unsafe) public private(set) static var precision: MatrixPrecision = .fp32
    nonisolated(unsafe) static var bf16Code: Int32 = 0

    /// What computes bf16 products in this process, or "unavailable".
    public static var bf16Name: String { (try? BF16Implementation.current.get())?.name ?? "unavailable" }

    /// Makes every following product run in `precision`; throws (and changes nothing) when
    /// this CPU cannot run bf16 products.
    public static func use(_ precision: MatrixPrecision) throws {
        if precision == .bf16 {
            let implementation = try BF16Implementation.current.get()
            bf16Code = implementation.code
        }
        MatrixProducts.precision = precision
    }

    /// Back to fp32 products (which every CPU runs).
    public static func useFP32() { precision = .fp32 }

    /// Runs `body` with bf16 products computed by `implementation` (tests compare them).
    static func with<T>(bf16 implementation: BF16Implementation, _ body: () throws -> T) rethrows -> T {
        let saved = (precision, bf16Code)
        precision = .bf16
        bf16Code = implementation.code
        defer { (precision, bf16Code) = saved }
        return try body()
    }
}

/// C = alpha · op(A) · op(B) + beta · C with bf16 inputs (see `LoomBF16.h`), on the calling thread.
@inline(never)
func bf16Gemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
    alpha: Float, a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
) {
    let status = loom_bf16_gemm(MatrixProducts.bf16Code, transposeA ? 1 : 0, transposeB ? 1 : 0, m, n, k, alpha,
                                a, lda, b, ldb, beta, c, ldc)
    if status != 0 { bf16PackingFailed(m: m, n: n, k: k) }
}

/// The packing buffers of a bf16 product (at most the size of its operands) could not be
/// allocated: the process is out of memory, as an fp32 product's BLAS would be.
func bf16PackingFailed(m: Int, n: Int, k: Int) -> Never {
    fatalError("bf16 product \(m)×\(k) · \(k)×\(n): out of memory for its packing buffers")
}

/// op(B) packed for the bf16 code in use, in the calling thread's buffer (valid until its next
/// bf16 product), for `bf16GemmPacked`.
func bf16PackB(transposeB: Bool, n: Int, k: Int, b: UnsafePointer<Float>, ldb: Int) -> UnsafeRawPointer {
    guard let packed = loom_bf16_pack_b(MatrixProducts.bf16Code, transposeB ? 1 : 0, n, k, b, ldb) else {
        bf16PackingFailed(m: 0, n: n, k: k)
    }
    return packed
}

/// The same product with op(B) already packed (`loom_bf16_pack_b`, or a weight `PackedWeights`
/// keeps), shared by the threads of `split`: each packs and multiplies its rows of A, split by
/// rows of C, or by columns at panel boundaries. The same bits whichever the split.
func bf16GemmPacked(
    _ split: ProductSplit, transposeA: Bool, m: Int, n: Int, k: Int,
    alpha: Float, a: UnsafePointer<Float>, lda: Int, packedB: UnsafeRawPointer,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
) {
    let code = MatrixProducts.bf16Code
    func product(rows: Range<Int>, columns: Range<Int>) {
        let aBlock = transposeA ? a + rows.lowerBound : a + rows.lowerBound * lda
        let status = loom_bf16_gemm_packed(code, transposeA ? 1 : 0, rows.count, columns.count, k, alpha, aBlock, lda,
                                           loom_bf16_packed_b_columns(code, packedB, k, columns.lowerBound), beta,
                                           c + rows.lowerBound * ldc + columns.lowerBound, ldc)
        if status != 0 { bf16PackingFailed(m: rows.count, n: columns.count, k: k) }
    }
    switch split {
    case .none:
        product(rows: 0..<m, columns: 0..<n)
    case .rows:
        parallelRanges(m, minimumChunk: 16) { product(rows: $0, columns: 0..<n) }
    case .columns:
        let width = loom_bf16_panel_width(code)
        parallelRanges((n + width - 1) / width) { panels in
            product(rows: 0..<m, columns: panels.lowerBound * width ..< min(n, panels.upperBound * width))
        }
    }
}

/// `x` rounded to bfloat16 and back (nearest, ties to even; subnormals to ±0).
public func bf16Rounded(_ x: Float) -> Float { loom_bf16_to_float(loom_bf16_from_float(x)) }

/// Weights packed once for the bf16 products of a generation (PPO's and GRPO's rollouts under
/// `--precision bf16`). Every decoding step multiplies a few rows by the same weights, and packing
/// a weight matrix costs about as much as such a product (`Benchmarks/results/bf16_packing.txt`),
/// so while `during` runs, `linear` packs each weight at its first product and reuses it after.
/// The weights must not change inside `during`: generation only reads them (LoRA adapters are
/// merged before it starts and unmerged after it ends). The packed copies (half the float32 size
/// natively, as large emulated) are freed when it returns. The products have the same bits either way.
public enum PackedWeights {
    final class Cache: @unchecked Sendable {
        struct Key: Hashable { let tensor: ObjectIdentifier, address: UInt, n: Int, k: Int, code: Int32 }
        /// Each packed weight with its tensor, kept alive so that no other tensor can take its
        /// identity or its memory while the cache lives.
        private var entries: [Key: (tensor: Tensor, memory: UnsafeMutableRawPointer)] = [:]
        private let lock = NSLock()
        private(set) var packings = 0

        /// `weight` ([n][k], row-major: op(B) = weightᵀ) packed for `code`, packed now if new.
        func packed(_ weight: Tensor, n: Int, k: Int, code: Int32) -> UnsafeRawPointer {
            let key = Key(tensor: ObjectIdentifier(weight), address: UInt(bitPattern: weight.data), n: n, k: k, code: code)
            lock.lock()
            defer { lock.unlock() }
            if let found = entries[key] { return UnsafeRawPointer(found.memory) }
            let memory = UnsafeMutableRawPointer.allocate(byteCount: max(64, loom_bf16_packed_b_size(code, n, k)), alignment: 64)
            loom_bf16_pack_b_into(code, 1, n, k, weight.data, k, memory)
            entries[key] = (weight, memory)
            packings += 1
            return UnsafeRawPointer(memory)
        }

        deinit { for entry in entries.values { entry.memory.deallocate() } }
    }

    nonisolated(unsafe) static var active: Cache?
    /// How many weights the last finished `during` packed (tests check each is packed once).
    nonisolated(unsafe) static var lastPackings = 0

    /// Runs `body` with weights packed once per bf16 product; with fp32 products, or inside
    /// another `during`, it only runs `body`.
    public static func during<T>(_ body: () throws -> T) rethrows -> T {
        guard MatrixProducts.precision == .bf16, active == nil else { return try body() }
        let cache = Cache()
        active = cache
        defer {
            active = nil
            lastPackings = cache.packings
        }
        return try body()
    }
}

/// c = a · weightᵀ (beta 0) or c += a · weightᵀ (beta 1) for `linear` in bf16, with the weight
/// packed once in `cache`: a: [m][k], weight: [n][k], c: [m][n].
func bf16LinearWithPackedWeight(_ cache: PackedWeights.Cache, m: Int, n: Int, k: Int, a: UnsafePointer<Float>,
                                weight: Tensor, beta: Float, c: UnsafeMutablePointer<Float>) {
    if m == 0 || n == 0 { return }
    let packed = cache.packed(weight, n: n, k: k, code: MatrixProducts.bf16Code)
    bf16GemmPacked(ProductSplit(m: m, n: n, k: k, threads: Threading.threadCount), transposeA: false, m: m, n: n, k: k,
                   alpha: 1, a: a, lda: k, packedB: packed, beta: beta, c: c, ldc: n)
}
