import ArgumentParser
import Foundation
import LoomTrain
import LoomInference

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Throughput benchmarks (training, generation, tokenizer).",
        subcommands: [BenchTrainCommand.self, BenchGenerateCommand.self, BenchTokenizeCommand.self]
    )
}

/// Measures sgemm throughput on Loom's threads, so MFU is relative to what BLAS reaches here.
func measureSgemmGFLOPs(threads: Int, size: Int = 1024, repeats: Int = 5) -> Double {
    Threading.configure(threads: threads)
    let a = Storage(count: size * size), b = Storage(count: size * size), c = Storage(count: size * size)
    for i in 0..<(size * size) { a.pointer[i] = Float(i % 7) * 0.01; b.pointer[i] = Float(i % 5) * 0.01 }
    parallelSgemm(transposeA: false, transposeB: true, m: size, n: size, k: size, a: a.pointer, lda: size,
                  b: b.pointer, ldb: size, beta: 0, c: c.pointer, ldc: size)
    var best = Double.infinity
    for _ in 0..<repeats {
        let start = DispatchTime.now().uptimeNanoseconds
        parallelSgemm(transposeA: false, transposeB: true, m: size, n: size, k: size, a: a.pointer, lda: size,
                      b: b.pointer, ldb: size, beta: 0, c: c.pointer, ldc: size)
        best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
    }
    return 2 * Double(size * size * size) / best / 1e9
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
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        let configuration = try TrainingConfiguration.load(URL(fileURLWithPath: config))
        let c = configuration.model
        var train = configuration.train
        if let batchSize { train.batchSize = batchSize }
        let sgemmRate = measureSgemmGFLOPs(threads: threads)
        Threading.configure(threads: threads)
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
        let mfu = gflops / sgemmRate
        let breakdown = Profiler.report()
        if json {
            var ops: [String: Double] = [:]
            for op in breakdown { ops[op.name] = op.seconds / Double(steps) * 1000 }
            let object: [String: Any] = [
                "framework": "loom", "config": config, "threads": threads, "batch_size": B, "context_length": T,
                "parameters": model.parameters.count, "tokens_per_second": tokensPerSecond,
                "ms_per_step": seconds / Double(steps) * 1000, "gflops": gflops, "sgemm_gflops": sgemmRate,
                "mfu": mfu, "flops_per_token": flopsPerToken, "loss": lastLoss, "op_ms_per_step": ops,
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("config \(config): \(model.parameters.count) parameters, batch \(B) × \(T), \(threads) thread(s)")
            print(String(format: "tokens/s %.0f   ms/step %.1f   GFLOP/s %.1f   sgemm GFLOP/s %.1f   MFU %.1f%% of sgemm",
                         tokensPerSecond, seconds / Double(steps) * 1000, gflops, sgemmRate, mfu * 100))
            print("flops/token = 6·N + 12·L·d·T = \(Int(flopsPerToken))   loss \(lastLoss)")
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
        abstract: "Decoding throughput with the KV cache on a randomly initialised model.")

    @Option(help: "Run configuration.") var config: String = "configs/tiny.json"
    @Option(help: "Threads.") var threads: Int = 1
    @Option(help: "Prompt length.") var promptLength: Int = 32
    @Option(help: "Tokens to generate.") var tokens: Int = 128
    @Option(help: "Sequences decoded together.") var batch: Int = 1
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        let configuration = try TrainingConfiguration.load(URL(fileURLWithPath: config))
        Threading.configure(threads: threads)
        let model = LlamaModel(configuration: configuration.model)
        model.initializeWeights(seed: 1)
        var rng = SeededRandom(seed: 3)
        let prompts = (0..<batch).map { _ in (0..<promptLength).map { _ in Int32(rng.nextInt(below: configuration.model.vocabularySize)) } }
        // Greedy decoding with no stop token, so every sequence produces exactly `tokens` tokens.
        let results = Generator(model: model, stopTokens: []).generateBatch(prompts: prompts, maxTokens: tokens, sampling: .greedy)
        let prefill = Double(batch * promptLength) / max(results[0].promptSeconds, 1e-9)
        let decode = Double(results.map(\.tokens.count).reduce(0, +)) / max(results[0].decodeSeconds, 1e-9)
        if json {
            print("{\"framework\": \"loom\", \"prefill_tokens_per_second\": \(prefill), \"decode_tokens_per_second\": \(decode), \"batch\": \(batch), \"threads\": \(threads)}")
        } else {
            print(String(format: "prefill %.0f tokens/s, decode %.0f tokens/s (batch %d, %d thread(s))", prefill, decode, batch, threads))
        }
    }
}
