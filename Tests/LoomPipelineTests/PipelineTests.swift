import XCTest
import Foundation
import LoomData
import LoomTrain
@testable import LoomPipeline

/// The pipeline as a library: a miniature recipe (a tiny model, a few steps per stage, a small
/// generated corpus) runs end to end in seconds, and the report holds every stage's figures,
/// each finite; the recipe file is checked key by key.
final class PipelineTests: XCTestCase {
    func temporary(_ name: String) -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("loom-pipeline-\(name)-\(UUID())")
    }

    /// A recipe that exercises every stage at toy sizes.
    func miniatureRecipe(in directory: URL) throws -> PipelineRecipe {
        let corpus = directory.appendingPathComponent("corpus")
        try FileManager.default.createDirectory(at: corpus, withIntermediateDirectories: true)
        for d in 0..<30 {
            let lines = (0..<20).map { "Document \(d) line \($0): the number \(d * 37 + $0 * 11) is not \($0 * $0 + d) nor \((d + 2) * ($0 + 3))." }
            try lines.joined(separator: "\n").write(to: corpus.appendingPathComponent("doc\(d).txt"), atomically: true, encoding: .utf8)
        }
        let config = directory.appendingPathComponent("model.json")
        try """
        {"model": {"vocab_size": 400, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                   "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 128},
         "train": {"batch_size": 4, "context_length": 64, "steps": 6, "learning_rate": 0.003, "min_learning_rate": 0.0003,
                   "warmup_steps": 2, "eval_interval": 3, "eval_batches": 2, "checkpoint_interval": 3, "seed": 5}}
        """.write(to: config, atomically: true, encoding: .utf8)
        var recipe = PipelineRecipe()
        recipe.tasks.kinds = ["parity", "compareNumbers"]
        recipe.tasks.train = 60; recipe.tasks.demonstrations = 30; recipe.tasks.dev = 12; recipe.tasks.test = 12
        recipe.tasks.rankSamples = 2; recipe.tasks.worksheets = 10
        recipe.pretrain.config = config.path; recipe.pretrain.data = [corpus.path]
        recipe.sft.steps = 4; recipe.sft.batchSize = 8; recipe.sft.extraData = []
        recipe.reward.steps = 3
        recipe.ppo.steps = 2; recipe.ppo.criticWarmup = 1; recipe.ppo.batchSize = 4
        recipe.dpo.steps = 2
        recipe.grpo.steps = 2; recipe.grpo.batchSize = 2; recipe.grpo.groupSize = 2
        recipe.evaluation.sampledAnswers = 2; recipe.evaluation.inContextProblems = 6; recipe.evaluation.shots = [0, 1]
        return recipe
    }

    func testMiniaturePipelineReportsEveryStage() throws {
        let directory = temporary("mini")
        defer { try? FileManager.default.removeItem(at: directory) }
        let recipe = try miniatureRecipe(in: directory)
        let out = directory.appendingPathComponent("run")
        try Pipeline(recipe: recipe, output: out, threads: 1).run()
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("report.json"))) as? [String: Any])
        func figure(_ stage: String, _ key: String) -> Double? { (report[stage] as? [String: Any])?[key] as? Double }
        for stage in ["base", "sft", "ppo", "dpo", "grpo"] {
            for key in ["dev_accuracy", "test_accuracy", "pretraining_text_loss"] {
                let value = try XCTUnwrap(figure(stage, key), "\(stage).\(key)")
                XCTAssertTrue(value.isFinite, "\(stage).\(key) = \(value)")
            }
            let curve = try XCTUnwrap((report[stage] as? [String: Any])?["test_in_context"] as? [String: Any], "\(stage).test_in_context")
            XCTAssertEqual(Set(curve.keys), ["0", "1"])
        }
        for stage in ["ppo", "dpo", "grpo"] {
            XCTAssertNotNil(figure(stage, "test_accuracy_minus_sft"), stage)
            XCTAssertEqual(((report[stage] as? [String: Any])?["test_accuracy_minus_sft_ci95"] as? [Double])?.count, 2, stage)
        }
        for key in ["dev_pair_accuracy", "test_pair_accuracy", "test_right_vs_wrong_accuracy"] {
            let value = try XCTUnwrap(figure("reward", key), "reward.\(key)")
            XCTAssertTrue((0...1).contains(value), "reward.\(key) = \(value)")
        }
        XCTAssertEqual((report["dpo"] as? [String: Any])?["method"] as? String, "DPO")
        // Every stage's wall time, and together no more than the run's.
        let stageSeconds = try XCTUnwrap(report["stage_seconds"] as? [String: Double])
        XCTAssertEqual(Set(stageSeconds.keys), ["tasks", "prepare", "pretrain", "SFT", "reward model", "PPO-ptx", "DPO", "GRPO", "test"])
        XCTAssertLessThanOrEqual(stageSeconds.values.reduce(0, +), try XCTUnwrap(report["seconds"] as? Double) + 1e-6)
        XCTAssertNotNil(figure("pretrain", "val_loss"))
        let markdown = try String(contentsOf: out.appendingPathComponent("report.md"), encoding: .utf8)
        for section in ["## Dev accuracy", "## Test results", "## SFT", "## Reward model", "## PPO-ptx", "## DPO", "## GRPO"] {
            XCTAssertTrue(markdown.contains(section), section)
        }
        // The recipe as run is kept beside the report and reads back the same.
        XCTAssertEqual(try PipelineRecipe.load(out.appendingPathComponent("recipe.json")), recipe)
        // PPO-ptx read text without worksheets; the pretraining data had them.
        let ptx = try String(contentsOf: out.appendingPathComponent("data-ptx/manifest.json"), encoding: .utf8)
        XCTAssertFalse(ptx.contains("pretrain_worksheets"))
        XCTAssertTrue(try String(contentsOf: out.appendingPathComponent("data/manifest.json"), encoding: .utf8).contains("pretrain_worksheets"))
        // A second run into the same directory is refused.
        XCTAssertThrowsError(try Pipeline(recipe: recipe, output: out, threads: 1).run()) { error in
            XCTAssertTrue("\(error)".contains("--resume"), "\(error)")
        }
    }

    /// A run that chooses settings (`--dev-only`) measures dev after each stage and never
    /// evaluates a model on the test split; resuming it normally adds the test figures.
    func testDevOnlyRunLeavesTheTestSplitUnmeasured() throws {
        let directory = temporary("devonly")
        defer { try? FileManager.default.removeItem(at: directory) }
        let recipe = try miniatureRecipe(in: directory)
        let out = directory.appendingPathComponent("run")
        let choosing = Pipeline(recipe: recipe, output: out, stopAfter: .sft, threads: 1)
        choosing.evaluatesTest = false
        try choosing.run()
        func report() throws -> [String: [String: Any]] {
            let json = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("report.json")))
            return try XCTUnwrap(json as? [String: Any]).compactMapValues { $0 as? [String: Any] }
        }
        let devOnly = try report()
        XCTAssertNotNil(devOnly["sft"]?["dev_accuracy"] as? Double)
        let testKeys = devOnly.flatMap { stage, figures in figures.keys.filter { $0.hasPrefix("test_") }.map { "\(stage).\($0)" } }
        XCTAssertEqual(testKeys, [])
        XCTAssertEqual(devOnly["recipe"]?["dev_only"] as? Bool, true)
        XCTAssertTrue(try String(contentsOf: out.appendingPathComponent("report.md"), encoding: .utf8).contains("evaluated on the dev split only"))

        // Resumed, the finished stages train no step (pretraining's mean training loss is then
        // NaN): the report is still written, that figure as null.
        try Pipeline(recipe: recipe, output: out, mode: .resumeIfPresent, stopAfter: .sft, threads: 1).run()
        let measured = try report()
        XCTAssertNotNil(measured["sft"]?["test_accuracy"] as? Double)
        XCTAssertNil(measured["recipe"]?["dev_only"])
    }

    func testRecipeFileKeysAreChecked() throws {
        let directory = temporary("recipe")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        // The committed default recipe is the library's default.
        let committed = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("configs/pipeline.json")
        XCTAssertEqual(try PipelineRecipe.load(committed), PipelineRecipe())
        let file = directory.appendingPathComponent("r.json")
        // Missing keys keep their defaults.
        try #"{"grpo": {"steps": 12}}"#.write(to: file, atomically: true, encoding: .utf8)
        let partial = try PipelineRecipe.load(file)
        XCTAssertEqual(partial.grpo.steps, 12)
        XCTAssertEqual(partial.grpo.groupSize, PipelineRecipe().grpo.groupSize)
        // A misspelt key names itself and the nearest known one.
        try #"{"grpo": {"learning_rte": 0.001}}"#.write(to: file, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try PipelineRecipe.load(file)) { error in
            XCTAssertTrue("\(error)".contains("grpo.learning_rte") && "\(error)".contains("grpo.learning_rate"), "\(error)")
        }
        // Values and relations are checked.
        try #"{"ppo": {"steps": 5, "critic_warmup": 5}}"#.write(to: file, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try PipelineRecipe.load(file)) { XCTAssertTrue("\($0)".contains("ppo.critic_warmup"), "\($0)") }
        try #"{"tasks": {"kinds": ["parity", "sudoku"]}}"#.write(to: file, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try PipelineRecipe.load(file)) { XCTAssertTrue("\($0)".contains("sudoku"), "\($0)") }
        try #"{"sft": {"steps": "many"}}"#.write(to: file, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try PipelineRecipe.load(file)) { XCTAssertTrue("\($0)".contains("steps"), "\($0)") }
    }
}
