import ArgumentParser
import Foundation
import LoomTrain
import LoomInference

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Throughput benchmarks (training, generation, tokenizer).",
        subcommands: [BenchTrainCommand.self, BenchGenerateCommand.self, BenchTokenizeCommand.self, BenchSgemmCommand.self]
    )
}

/// One process's sgemm rate with the kernels it loaded: what `MachineReport` runs in a child
/// process for each OpenBLAS core type (`LOOM_BLAS_CORETYPE=SkylakeX loom bench sgemm`).
struct BenchSgemmCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sgemm",
        abstract: "sgemm GFLOP/s (1024³) with the BLAS kernels this process chose, and what it chose.")

    @Option(help: "Threads for Loom's kernels.") var threads: Int = 1
    @Option(help: "Matrix size.") var size: Int = 1024
    @Flag(help: "Print one JSON object.") var json = false

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1, got \(threads)") }
        guard size >= 1 else { throw ValidationError("--size must be at least 1, got \(size)") }
    }

    func run() throws {
        Threading.configure(threads: threads)
        let rate = measureSgemmGFLOPs(size: size)
        let blas = BLASLibrary.shared
        if json {
            let object: [String: Any] = ["core": blas.coreName, "core_source": blas.coreSource.rawValue,
                                         "config": blas.configuration, "threads": threads, "size": size, "sgemm_gflops": rate]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("blas: \(blas.summary)")
            print(String(format: "sgemm %d³ on %d thread(s): %.1f GFLOP/s", size, threads, rate))
        }
    }
}

struct BenchTrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Training throughput on random tokens: tokens/s, per-op time, GFLOP/s and MFU.")

    @Option(help: "Run configuration (configs/tiny.json, configs/small.json).") var config: String = "configs/tiny.json"
    @Option(help: "Threads for Loom's kernels.") var threads: Int = 1
    @Option(help: "Measured optimizer steps.") var steps: Int = 5
    @Option(help: "Untimed warm-up steps.") var warmup: Int = 1
    @Option(help: "Override the batch size.") var batchSize: Int?
    @Flag(inversion: .prefixedNo,
          help: "Measure sgemm with every OpenBLAS core type this CPU can run (in child processes), so MFU is against the fastest.")
    var sweepCores = true
    @Option(help: "Matrix products in fp32, or bf16 (bf16 inputs, fp32 accumulation; needs AVX512-BF16).") var precision: MatrixPrecision = .fp32
    @Flag(help: "Print one JSON object.") var json = false

    func validate() throws {
        try FlagRange.threads(threads)
        try FlagRange.atLeast(1, steps, "steps")
        try FlagRange.atLeast(0, warmup, "warmup")
        try FlagRange.atLeast(1, batchSize, "batch-size")
        try validatePrecision(precision)
    }

    func run() throws {
        let configuration = try TrainingConfiguration.load(URL(fileURLWithPath: config))
        let c = configuration.model
        var train = configuration.train
        if let batchSize { train.batchSize = batchSize }
        let machine = MachineReport(threads: threads, sweepCores: sweepCores)
        // After the sgemm measurement, which stays fp32: MFU is against the fastest fp32 sgemm.
        try MatrixProducts.use(precision)
        let products = precision == .fp32 ? "fp32 (OpenBLAS)" : "bf16 inputs, fp32 accumulation: \(MatrixProducts.bf16Name)"
        let model = LlamaModel(configuration: c)
        model.initializeWeights(seed: train.seed)
        let optimizer = AdamW(parameters: model.parameters, hyperparameters: train.adamHyperparameters)
        let B = train.batchSize, T = train.contextLength
        var rng = SeededRandom(seed: 7)
        let tokens = (0..<(B * T)).map { _ in Int32(rng.nextInt(below: c.vocabularySize)) }
        let targets = Array(tokens.dropFirst()) + [ignoredTarget]
        func step() -> Float {
            model.parameters.zeroGradients()
            let tape = Tape()
            let loss = tape.record { model.languageModelLoss(tokens: tokens, targets: targets, batch: B, sequence: T) }
            tape.backward(from: loss)
            clipGradientNorm(model.parameters, maxNorm: train.gradClip)
            optimizer.update(learningRate: train.learningRate)
            return loss.item
        }
        for _ in 0..<warmup { _ = step() }
        Profiler.reset()
        Profiler.enabled = true
        let start = DispatchTime.now().uptimeNanoseconds
        var lastLoss: Float = 0
        for _ in 0..<steps { lastLoss = step() }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
        Profiler.enabled = false
        let tokensPerSecond = Double(B * T * steps) / seconds
        let flopsPerToken = trainingFLOPsPerToken(c, contextLength: T)
        let gflops = tokensPerSecond * flopsPerToken / 1e9
        let mfu = gflops / machine.best.gflops
        let breakdown = Profiler.report()
        if json {
            var ops: [String: Double] = [:]
            for op in breakdown { ops[op.name] = op.seconds / Double(steps) * 1000 }
            var object: [String: Any] = [
                "framework": "loom", "config": config, "threads": threads, "batch_size": B, "context_length": T,
                "parameters": model.parameters.count, "tokens_per_second": tokensPerSecond,
                "ms_per_step": seconds / Double(steps) * 1000, "gflops": gflops,
                "mfu": mfu, "mfu_basis": "model GFLOP/s ÷ best_sgemm_gflops (the fastest OpenBLAS core on this machine)",
                "mfu_of_loaded_sgemm": gflops / machine.sgemmGFLOPs,
                "flops_per_token": flopsPerToken, "flops_convention": trainingFLOPsConvention,
                "flops_per_token_full_attention": trainingFLOPsPerTokenFullAttention(c, contextLength: T),
                "loss": lastLoss, "op_ms_per_step": ops, "precision": precision.rawValue, "matrix_products": products,
            ]
            object.merge(machine.jsonObject) { current, _ in current }
            if let peak = machine.estimatedPeakGFLOPs { object["mfu_of_fma_peak_estimate"] = gflops / peak }
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            for line in machine.lines { print(line) }
            print("config \(config): \(model.parameters.count) parameters, batch \(B) × \(T), \(threads) thread(s), matrix products \(products)")
            let best = machine.best
            print(String(format: "tokens/s %.0f   ms/step %.1f   GFLOP/s %.1f   MFU %.1f%% of the fastest sgemm (%@, %.1f GFLOP/s)",
                         tokensPerSecond, seconds / Double(steps) * 1000, gflops, mfu * 100, best.core, best.gflops))
            if let peak = machine.estimatedPeakGFLOPs {
                print(String(format: "  %.1f%% of the loaded sgemm (%@), %.1f%% of the estimated FMA peak",
                             gflops / machine.sgemmGFLOPs * 100, machine.blas.coreName, gflops / peak * 100))
            }
            print("flops/token \(Int(flopsPerToken)) = \(trainingFLOPsConvention)   loss \(lastLoss)")
            let total = breakdown.reduce(0) { $0 + $1.seconds }
            print("per-op time per step:")
            for op in breakdown {
                print(String(format: "  %-28@ %8.2f ms  %5.1f%%", op.name as NSString,
                             op.seconds / Double(steps) * 1000, op.seconds / total * 100))
            }
        }
    }
}

struct BenchGenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Prompt processing and decoding throughput with the KV cache, on a model directory (float32 or quantized) or a randomly initialised model.")

    @Option(help: "Model directory (float32 or quantized); without it, a random model of --config's shape.") var model: String?
    @Option(help: "Run configuration.") var config: String = "configs/tiny.json"
    @Option(help: "Threads.") var threads: Int = 1
    @Option(help: "Prompt length.") var promptLength: Int = 32
    @Option(help: "Tokens to generate.") var tokens: Int = 128
    @Option(help: "Sequences decoded together.") var batch: Int = 1
    @Option(help: "Timed runs; the fastest is reported.") var repeats: Int = 1
    @Flag(help: "Every product through the batch-invariant kernels, as loom serve runs them.") var batchInvariant = false
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1, got \(repeats)") }
        Threading.configure(threads: threads)
        let model: LlamaModel, vocabulary: Int
        if let directory = self.model {
            let loaded = try ModelDirectory.load(URL(fileURLWithPath: directory), heads: .languageModel)
            model = loaded.model
            vocabulary = loaded.tokenizer.vocabularySize
        } else {
            model = LlamaModel(configuration: try TrainingConfiguration.load(URL(fileURLWithPath: config)).model)
            model.initializeWeights(seed: 1)
            vocabulary = model.configuration.vocabularySize
        }
        guard promptLength >= 1, tokens >= 1, batch >= 1 else {
            throw ValidationError("--prompt-length, --tokens and --batch must be at least 1")
        }
        guard promptLength + tokens <= model.configuration.maxPositionEmbeddings else {
            throw ValidationError("--prompt-length + --tokens (\(promptLength + tokens)) exceeds the model's max_position_embeddings \(model.configuration.maxPositionEmbeddings)")
        }
        // The weight types, e.g. "Q4_1+Q8_0" (quantized matrices) or "F32".
        let weights = model.isQuantized ? Set(model.quantizedWeights.values.map(\.type.rawValue)).sorted().joined(separator: "+") : "F32"
        var rng = SeededRandom(seed: 3)
        let prompts = (0..<batch).map { _ in (0..<promptLength).map { _ in Int32(rng.nextInt(below: vocabulary)) } }
        // Greedy decoding with no stop token, so every sequence produces exactly `tokens` tokens.
        var generator = Generator(model: model, stopTokens: [])
        generator.batchInvariant = batchInvariant
        var prefill = 0.0, decode = 0.0
        for _ in 0..<repeats {
            let results = generator.generateBatch(prompts: prompts, maxTokens: tokens, sampling: .greedy)
            prefill = max(prefill, Double(batch * promptLength) / max(results[0].promptSeconds, 1e-9))
            decode = max(decode, Double(results.map(\.tokens.count).reduce(0, +)) / max(results[0].decodeSeconds, 1e-9))
        }
        let cpu = CPUFeatures.current, blas = BLASLibrary.shared
        if json {
            let object: [String: Any] = [
                "framework": "loom", "config": self.model ?? config, "weights": weights, "prefill_tokens_per_second": prefill,
                "decode_tokens_per_second": decode, "batch": batch, "threads": threads, "tokens": tokens,
                "prompt_length": promptLength, "cpu_model": cpu.modelName, "blas_core": blas.coreName,
                "batch_invariant": batchInvariant, "kernel_level": KernelLevel.current.name,
                "quantized_kernel": "\(QuantizedKernel.best)",
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("cpu: \(cpu.modelName); blas: \(blas.summary); Loom's kernels: \(KernelLevel.current.name) (quantized: \(QuantizedKernel.best))")
            print(String(format: "%@ weights: prefill %.0f tokens/s, decode %.0f tokens/s (batch %d, %d thread(s), best of %d)",
                         weights, prefill, decode, batch, threads, repeats))
        }
    }
}
