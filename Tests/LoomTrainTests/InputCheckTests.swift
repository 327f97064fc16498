import XCTest
import Foundation
import LoomData
import LoomTokenizer
@testable import LoomTrain
@testable import LoomInference

/// Every input is checked where it enters, with an error naming the file and the value: the
/// kernels are compiled without bounds checks, so these checks are all that stands between a
/// corrupt file and an out-of-bounds read.
final class InputCheckTests: XCTestCase {
    func temporary(_ name: String) -> URL { AlignmentTestModel.temporary(name) }

    func assertThrows<T>(_ expression: @autoclosure () throws -> T, containing fragments: String..., file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try expression(), file: file, line: line) { error in
            for fragment in fragments {
                XCTAssertTrue("\(error)".contains(fragment), "\"\(error)\" does not mention \"\(fragment)\"", file: file, line: line)
            }
        }
    }

    // MARK: Token ids against the vocabulary

    func testShardIdsAtOrPastTheVocabularyAreRejectedWithFileAndPosition() throws {
        let directory = temporary("ids")
        defer { try? FileManager.default.removeItem(at: directory) }
        let wide = try ShardWriter(directory: directory, split: "train", dtype: .uint32)
        try wide.append([1, 2, 70_000, 3, Int(UInt32.max)])
        try wide.finish()
        let narrow = try ShardWriter(directory: directory, split: "val", dtype: .uint16)
        try narrow.append([0, 299, 5])
        try narrow.finish()

        let train = try TokenDataset(directory: directory, split: "train")
        assertThrows(try train.checkTokens(below: 300), containing: "train_000.bin", "token 2 ", "70000", "300")
        assertThrows(try train.checkTokens(below: 70_001), containing: "token 4 ", "4294967295")
        let validation = try TokenDataset(directory: directory, split: "val")
        XCTAssertNoThrow(try validation.checkTokens(below: 300))   // 299 is the last id of 300
        assertThrows(try validation.checkTokens(below: 299), containing: "val_000.bin", "token 1 ", "299")
    }

    func testPretrainingRefusesShardsWithIdsOutsideTheModelsVocabulary() throws {
        let data = temporary("bad-shards"), out = temporary("bad-shards-out")
        defer { for u in [data, out] { try? FileManager.default.removeItem(at: u) } }
        let tokenizer = ByteLevelBPETokenizer.train(texts: AlignmentTestModel.texts, vocabSize: 280)
        try tokenizer.save(to: data)
        let writer = try ShardWriter(directory: data, split: "train", dtype: .uint16)
        try writer.append((0..<400).map { $0 % 7 == 6 ? 300 : $0 % 250 })
        try writer.finish()
        let model = LlamaConfiguration(vocabularySize: 300, hiddenSize: 16, intermediateSize: 32, layerCount: 1,
                                       headCount: 2, kvHeadCount: 1, maxPositionEmbeddings: 16)
        let config = TrainingConfiguration(model: model, train: TrainSettings(batchSize: 2, contextLength: 16, steps: 1))
        assertThrows(try Pretrainer(options: PretrainOptions(configuration: config, dataDirectory: data, outputDirectory: out,
                                                             steps: 1, threads: 1, logInterval: 1000)).run(),
                     containing: "train_000.bin", "token 6 ", "id 300", "vocabulary of 300")
    }

    // MARK: Tokenizer against model

    func testTokenizerLargerThanTheModelIsRefused() throws {
        let directory = try AlignmentTestModel.make()
        defer { try? FileManager.default.removeItem(at: directory) }
        XCTAssertNoThrow(try ModelDirectory.load(directory))
        let url = directory.appendingPathComponent("config.json")
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        config["vocab_size"] = 200
        try JSONSerialization.data(withJSONObject: config).write(to: url)
        // The weights no longer match either; the tokenizer check names the mismatch first
        // when it is asked for on its own.
        let tokenizer = try ModelDirectory.loadTokenizer(directory)
        let small = LlamaConfiguration(vocabularySize: 200, hiddenSize: 32, intermediateSize: 64, layerCount: 2,
                                       headCount: 4, kvHeadCount: 2, maxPositionEmbeddings: 64)
        assertThrows(try ModelDirectory.checkTokenizer(tokenizer, fits: small, directory: directory),
                     containing: directory.path, "\(tokenizer.vocabularySize) tokens", "vocab_size is 200")
        var badSpecial = LlamaConfiguration(vocabularySize: 400, hiddenSize: 32, intermediateSize: 64, layerCount: 2,
                                            headCount: 4, kvHeadCount: 2, maxPositionEmbeddings: 64)
        badSpecial.eosTokenID = 350
        assertThrows(try ModelDirectory.checkTokenizer(tokenizer, fits: badSpecial, directory: directory), containing: "eos_token_id 350")
    }

    func testPolicyAndRewardModelMustShareATokenizer() throws {
        let a = ByteLevelBPETokenizer.train(texts: AlignmentTestModel.texts, vocabSize: 300)
        let same = ByteLevelBPETokenizer.train(texts: AlignmentTestModel.texts, vocabSize: 300)
        let other = ByteLevelBPETokenizer.train(texts: AlignmentTestModel.texts.map { $0.uppercased() }, vocabSize: 300)
        let smaller = ByteLevelBPETokenizer.train(texts: AlignmentTestModel.texts, vocabSize: 290)
        let policy = URL(fileURLWithPath: "/runs/sft"), reward = URL(fileURLWithPath: "/runs/reward")
        XCTAssertNoThrow(try ModelDirectory.checkSameTokenizer(a, of: policy, same, of: reward))
        assertThrows(try ModelDirectory.checkSameTokenizer(a, of: policy, other, of: reward), containing: "/runs/sft", "/runs/reward", "vocabulary entries")
        assertThrows(try ModelDirectory.checkSameTokenizer(a, of: policy, smaller, of: reward), containing: "vocabulary sizes 300 and 290")
    }

    func testPPORefusesARewardModelWithAnotherTokenizer() throws {
        let policy = try AlignmentTestModel.make()
        let reward = temporary("ppo-reward")
        try LlamaModel.load(directory: policy, heads: .score).save(directory: reward)
        let prompts = try AlignmentTestModel.write((0..<4).map { PromptDataset.jsonLine(PromptExample(prompt: "question \($0)?", answer: "yes")) }, "prompts")
        let out = temporary("ppo-tokenizers")
        defer { for u in [policy, reward, prompts, out] { try? FileManager.default.removeItem(at: u) } }
        // Another tokenizer that still fits the reward model's embedding: only the comparison catches it.
        let other = ByteLevelBPETokenizer.train(texts: AlignmentTestModel.texts.map { $0.uppercased() }, vocabSize: 290)
        try other.save(to: reward)
        var options = PPOOptions(policy: policy, rewardModel: reward, prompts: prompts, output: out)
        options.settings.steps = 1
        options.settings.batchSize = 2
        options.minibatches = 1
        assertThrows(try PPOTrainer(options: options).run(), containing: "tokenizers of", policy.path, reward.path, "vocabulary sizes")
    }

    // MARK: Weights

    func testNonFiniteWeightsAreRejectedAtLoadNamingTheTensor() throws {
        let directory = try AlignmentTestModel.make()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("model.safetensors")
        var bytes = [UInt8](try Data(contentsOf: url))
        let headerLength = Int(bytes[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
        let header = try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + headerLength)])) as! [String: Any]
        let name = "model.layers.1.mlp.down_proj.weight"
        let offsets = (header[name] as! [String: Any])["data_offsets"] as! [Int]
        let position = 8 + headerLength + offsets[0] + 4 * 5
        withUnsafeBytes(of: Float.infinity.bitPattern.littleEndian) { bytes.replaceSubrange(position..<(position + 4), with: $0) }
        try Data(bytes).write(to: url)
        assertThrows(try LlamaModel.load(directory: directory), containing: "model.safetensors", name, "inf", "element 5")
    }

    // MARK: Sizes and configuration files

    func configurationFile(_ edit: (inout [String: Any], inout [String: Any]) -> Void) throws -> URL {
        var model: [String: Any] = ["vocab_size": 300, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                                    "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64]
        var train: [String: Any] = ["batch_size": 4, "context_length": 32, "steps": 10, "learning_rate": 0.001, "min_learning_rate": 0.0001]
        edit(&model, &train)
        let url = temporary("config").appendingPathExtension("json")
        try JSONSerialization.data(withJSONObject: ["model": model, "train": train]).write(to: url)
        return url
    }

    func testHugeSizesAreClearErrorsBeforeAnythingIsAllocated() throws {
        let cases: [(String, String, Any, String)] = [
            ("model", "vocab_size", 1_000_000_000_000, "vocab_size 1000000000000 exceeds"),
            ("model", "hidden_size", 1_000_000_000, "hidden_size 1000000000 exceeds"),
            ("model", "num_hidden_layers", -3, "num_hidden_layers must be positive"),
            ("train", "batch_size", 1_000_000_000_000_000, "batch_size"),
        ]
        for (section, key, value, message) in cases {
            let url = try configurationFile { model, train in if section == "model" { model[key] = value } else { train[key] = value } }
            defer { try? FileManager.default.removeItem(at: url) }
            assertThrows(try TrainingConfiguration.load(url), containing: url.path, message)
        }
        // Each size within its bound, but the product past Loom's parameter limit.
        let big = LlamaConfiguration(vocabularySize: 1 << 24, hiddenSize: 1 << 16, intermediateSize: 1 << 18, layerCount: 1 << 10,
                                     headCount: 1 << 8, kvHeadCount: 1 << 8, maxPositionEmbeddings: 1 << 20)
        assertThrows(try big.validate(), containing: "parameters", "limit")
        XCTAssertEqual(try big.parameterCount(), (1 << 46) + (1 << 27) + (1 << 40) + (1 << 16),
                       "the parameter count is exact where it does not overflow")
        // A batch that fits in 64 bits but not in memory.
        let url = try configurationFile { model, train in model["vocab_size"] = 1 << 24; train["batch_size"] = 1 << 20 }
        defer { try? FileManager.default.removeItem(at: url) }
        assertThrows(try TrainingConfiguration.load(url), containing: "batch_size", "memory")
    }

    func testParameterCountMatchesTheModel() throws {
        for tied in [true, false] {
            let configuration = LlamaConfiguration(vocabularySize: 300, hiddenSize: 32, intermediateSize: 64, layerCount: 2,
                                                   headCount: 4, kvHeadCount: 2, maxPositionEmbeddings: 64, tieWordEmbeddings: tied)
            XCTAssertEqual(try configuration.parameterCount(), LlamaModel(configuration: configuration).parameters.count)
        }
    }

    func testMisspeltKeysAreRejectedWithASuggestion() throws {
        let typo = try configurationFile { _, train in train["learning_rte"] = train.removeValue(forKey: "learning_rate") }
        let modelTypo = try configurationFile { model, _ in model["hidden_sise"] = model.removeValue(forKey: "hidden_size") }
        let unknown = try configurationFile { _, train in train["flux_capacitor"] = 1 }
        defer { for u in [typo, modelTypo, unknown] { try? FileManager.default.removeItem(at: u) } }
        assertThrows(try TrainingConfiguration.load(typo), containing: typo.path, "\"train.learning_rte\"", "did you mean \"learning_rate\"")
        assertThrows(try TrainingConfiguration.load(modelTypo), containing: "\"model.hidden_sise\"", "did you mean \"hidden_size\"")
        assertThrows(try TrainingConfiguration.load(unknown), containing: "\"train.flux_capacitor\"", "known: ")
        XCTAssertEqual(closestName(to: "warmup_step", among: TrainSettings.fieldNames), "warmup_steps")
        XCTAssertNil(closestName(to: "zzz", among: TrainSettings.fieldNames))
    }

    func testRelationsBetweenSettingsAreChecked() throws {
        let cases: [(String, Any, String)] = [
            ("min_learning_rate", 10.0, "above learning_rate"),
            ("eval_batches", 0, "eval_batches"),
            ("eval_interval", -1, "eval_interval"),
            ("checkpoint_interval", -1, "checkpoint_interval"),
            ("context_length", 65, "exceeds model.max_position_embeddings"),
            ("grad_clip", -1.0, "grad_clip"),
        ]
        for (key, value, message) in cases {
            let url = try configurationFile { _, train in train[key] = value }
            defer { try? FileManager.default.removeItem(at: url) }
            assertThrows(try TrainingConfiguration.load(url), containing: url.path, message)
        }
        let valid = try configurationFile { _, _ in }
        defer { try? FileManager.default.removeItem(at: valid) }
        XCTAssertNoThrow(try TrainingConfiguration.load(valid))
        XCTAssertNoThrow(try TrainingConfiguration.load(URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../configs/tiny.json").standardizedFileURL))
    }

    // MARK: Stage settings

    func testStagesRefuseSettingsOutOfRangeBeforeLoadingAnything() throws {
        let missing = URL(fileURLWithPath: "/nonexistent/model")
        func sft(_ edit: (inout SFTOptions) -> Void) -> SFTOptions {
            var o = SFTOptions(model: missing, data: [missing], output: temporary("never"))
            edit(&o)
            return o
        }
        assertThrows(try SFTTrainer(options: sft { $0.settings.batchSize = 0 }).run(), containing: "--batch-size", "got 0")
        assertThrows(try SFTTrainer(options: sft { $0.validationFraction = 1.5 }).run(), containing: "--val-fraction", "1.5")
        assertThrows(try SFTTrainer(options: sft { $0.settings.minLearningRate = 1 }).run(), containing: "--min-learning-rate", "above")
        assertThrows(try SFTTrainer(options: sft { $0.settings.learningRate = .nan }).run(), containing: "--learning-rate")
        var dpo = DPOOptions(model: missing, data: [missing], output: temporary("never"))
        dpo.beta = 0
        assertThrows(try DPOTrainer(options: dpo).run(), containing: "--beta", "got 0")
        var ppo = PPOOptions(policy: missing, rewardModel: missing, prompts: missing, output: temporary("never"))
        ppo.minibatches = 0
        assertThrows(try PPOTrainer(options: ppo).run(), containing: "--minibatches", "got 0")
        ppo.minibatches = 1
        ppo.targetKL = 0
        assertThrows(try PPOTrainer(options: ppo).run(), containing: "--target-kl", "got 0")
    }

    func testSFTRefusesToTrainOnNothing() throws {
        let model = try AlignmentTestModel.make()
        let examples = (0..<6).map { i in
            SFTExample(messages: [ChatMessage(role: "user", content: "question \(i)?"), ChatMessage(role: "assistant", content: "yes")])
        }
        let data = try AlignmentTestModel.write(examples.map { SFTDataset.jsonLine($0) }, "sft-nothing")
        defer { for u in [model, data] { try? FileManager.default.removeItem(at: u) } }
        var options = SFTOptions(model: model, data: [data], output: temporary("never"))
        options.settings.steps = 1
        options.maxLength = 3
        assertThrows(try SFTTrainer(options: options).run(), containing: "--max-length 3", "chat template")
        options.maxLength = 1000
        assertThrows(try SFTTrainer(options: options).run(), containing: "--max-length 1000", "context of 64")
        // The stages on prompt + response pairs take the same rule.
        var dpo = DPOOptions(model: model, data: [data], output: temporary("never"))
        dpo.maxLength = 3
        assertThrows(try DPOTrainer(options: dpo).run(), containing: "dpo: --max-length 3", "chat template")
        var reward = RewardOptions(model: model, data: [data], output: temporary("never"))
        reward.maxLength = 2
        assertThrows(try RewardTrainer(options: reward).run(), containing: "reward: --max-length 2", "chat template")
    }

    // MARK: I/O errors

    func testMetricsWriteFailureIsAnErrorNamingTheFile() throws {
        let directory = temporary("metrics-full")
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let url = directory.appendingPathComponent("metrics.jsonl")
        // A log file on a full device: /dev/full accepts the open and fails every write with ENOSPC.
        try FileManager.default.createSymbolicLink(atPath: url.path, withDestinationPath: "/dev/full")
        let log = try MetricsLog(directory: directory)
        assertThrows(try log.log(["step": 1, "loss": 2.5]), containing: url.path, "No space left on device")
    }
}
