import ArgumentParser
import Foundation
import LoomData
import LoomEval
import LoomInference
import LoomTokenizer
import LoomTrain

struct PipelineCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pipeline",
        abstract: "The main job: every stage on the bundled data, ending in a report (report.md, report.json).")

    @Option(help: "Output directory.") var out: String = "runs/demo"
    @Option(help: "Run configuration for pretraining.") var config: String = "configs/tiny.json"
    @Option(help: "Bundled pretraining text (files or folders).") var data: [String] = ["data/pretrain"]
    @Option(help: "Pretraining steps (default: the configuration's train.steps).") var pretrainSteps: Int?
    @Option(help: "Threads.") var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    func run() throws {
        let start = Date()
        let root = URL(fileURLWithPath: out)
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        Threading.configure(threads: threads)
        let report = PipelineReport(directory: root)
        let configuration = try TrainingConfiguration.load(URL(fileURLWithPath: config))

        // 1. Data: clean, deduplicate, train the tokenizer, write shards.
        logLine("== 1/3 prepare: \(data.joined(separator: ", "))")
        var prepare = PrepareOptions(inputs: data, outputDirectory: root.appendingPathComponent("data"))
        prepare.vocabSize = configuration.model.vocabularySize
        let prepared = try PreparePipeline.run(prepare)
        let m = prepared.manifest
        report.set("data", "documents_read", m.documentsRead)
        report.set("data", "documents_kept", m.documentsKept)
        report.set("data", "removed", m.removed)
        report.set("data", "train_tokens", m.splits["train"]?.tokens ?? 0)
        report.set("data", "val_tokens", m.splits["val"]?.tokens ?? 0)
        report.section("Data", markdownTable(["", "value"], [
            ["sources", "\(m.sources.count) files"],
            ["documents read / kept", "\(m.documentsRead) / \(m.documentsKept)"],
            ["removed", m.removed.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")],
            ["boilerplate lines removed", "\(m.cleaning.boilerplateLinesRemoved)"],
            ["train tokens", "\(m.splits["train"]?.tokens ?? 0) (\(m.splits["train"]?.bytes ?? 0) bytes)"],
            ["validation tokens", "\(m.splits["val"]?.tokens ?? 0) (\(m.splits["val"]?.bytes ?? 0) bytes)"],
            ["tokenizer", "byte-level BPE, \(m.vocabSize) tokens"],
        ]))

        // 2. Pretraining.
        logLine("== 2/3 pretrain: \(config)")
        let baseDirectory = root.appendingPathComponent("base")
        let pretrain = try Pretrainer(options: PretrainOptions(
            configuration: configuration, dataDirectory: root.appendingPathComponent("data"),
            outputDirectory: baseDirectory, steps: pretrainSteps, threads: threads, logInterval: 25)).run()
        let metrics = MetricsLog.read(baseDirectory.appendingPathComponent("metrics.jsonl"))
        let trainCurve = metrics.compactMap { r -> (x: Double, y: Double)? in
            guard let s = r["step"] as? Int, let l = r["loss"] as? Double else { return nil }
            return (Double(s), l)
        }
        let valCurve = metrics.compactMap { r -> (x: Double, y: Double)? in
            guard let s = r["step"] as? Int, let l = r["val_loss"] as? Double else { return nil }
            return (Double(s), l)
        }
        let lossChart = try report.chart("pretrain_loss", LineChart(
            title: "Pretraining loss", xLabel: "step", yLabel: "cross-entropy (nats)",
            series: [.init(name: "train", points: trainCurve, color: "#1f77b4"), .init(name: "validation", points: valCurve, color: "#d62728")]))
        report.set("pretrain", "steps", pretrain.steps)
        report.set("pretrain", "parameters", pretrain.parameters)
        report.set("pretrain", "train_loss", pretrain.finalTrainLoss)
        report.set("pretrain", "val_loss", pretrain.validation?.loss ?? Double.nan)
        report.set("pretrain", "val_bpb", pretrain.validation?.bitsPerByte ?? Double.nan)
        report.set("pretrain", "tokens_per_second", pretrain.tokensPerSecond)
        report.set("pretrain", "seconds", pretrain.seconds)
        report.section("Pretraining", """
            \(pretrain.parameters) parameters, \(pretrain.steps) steps, \(String(format: "%.0f", pretrain.tokensPerSecond)) tokens/s on \(threads) thread(s), \(String(format: "%.0f", pretrain.seconds)) s.

            \(markdownTable(["final train loss", "validation loss", "validation bits/byte"],
                            [[String(format: "%.4f", pretrain.finalTrainLoss), String(format: "%.4f", pretrain.validation?.loss ?? .nan),
                              String(format: "%.4f", pretrain.validation?.bitsPerByte ?? .nan)]]))
            Train loss: `\(sparkline(trainCurve.map(\.y)))`

            \(lossChart)
            """)

        // 3. Samples from the base model.
        logLine("== 3/3 samples")
        let (model, tokenizer) = try loadModelAndTokenizer(baseDirectory.path)
        let generator = Generator(model: model, stopTokens: [Int32(tokenizer.endOfTextID)])
        var rows: [[String]] = []
        var samples: [[String: String]] = []
        for (i, prompt) in ["ROMEO:", "And Jesus said unto them,", "The Python interpreter", "床前明月光，"].enumerated() {
            let ids = tokenizer.encode(prompt).map(Int32.init)
            let result = generator.generate(prompt: ids, maxTokens: 48, sampling: SamplingParameters(temperature: 0.8, topK: 50, topP: 0.95, seed: UInt64(i)))
            let text = tokenizer.decode(result.tokens.map(Int.init))
            rows.append(["`\(prompt)`", text])
            samples.append(["prompt": prompt, "completion": text])
            logLine("  \(prompt)\(text.replacingOccurrences(of: "\n", with: " ⏎ "))")
        }
        report.figures["pretrain", default: [:]]["samples"] = samples
        report.section("Samples from the base model (temperature 0.8, top-k 50, top-p 0.95)", markdownTable(["prompt", "completion"], rows))

        report.seconds = Date().timeIntervalSince(start)
        try report.write()
        logLine("report: \(root.appendingPathComponent("report.md").path) (\(String(format: "%.0f", report.seconds)) s)")
    }
}
