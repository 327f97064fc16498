import XCTest
import Foundation
@testable import LoomNN

/// LoRA adapters: PEFT's initialisation, forward and backward against finite differences,
/// merging, the PEFT files and their errors.
final class LoRATests: XCTestCase {
    override func setUp() { Threading.configure(threads: 2) }

    let configuration = LlamaConfiguration(vocabularySize: 50, hiddenSize: 16, intermediateSize: 24,
                                           layerCount: 2, headCount: 4, kvHeadCount: 2, maxPositionEmbeddings: 16)

    func makeModel(heads: LlamaModel.Heads = .languageModel) -> LlamaModel {
        let model = LlamaModel(configuration: configuration, heads: heads)
        model.initializeWeights(seed: 3, standardDeviation: 0.2)
        return model
    }

    /// Adapters with B nonzero too (PEFT starts B at zero, which would hide A from every check).
    func randomAdapters(_ model: LlamaModel, settings: LoRASettings) -> LoRAAdapters {
        let adapters = LoRAAdapters(settings: settings, model: model, seed: 5)
        var rng = SeededRandom(seed: 9)
        for entry in adapters.parameters.entries where entry.name.hasSuffix("lora_B.weight") { entry.tensor.fillNormal(std: 0.3, rng: &rng) }
        return adapters
    }

    let tokens: [Int32] = [1, 7, 3, 9, 22, 4, 8, 15, 2, 2, 30, 11]
    var targets: [Int32] { Array(tokens.dropFirst()) + [5] }

    func loss(_ model: LlamaModel) -> Float {
        withoutGradients { model.languageModelLoss(tokens: tokens, targets: targets, batch: 2, sequence: 6).item }
    }

    func testPEFTInitialisationLeavesTheModelUnchanged() {
        let model = makeModel()
        let before = withoutGradients { model.logits(tokens: tokens, batch: 2, sequence: 6) }.scalars
        let adapters = LoRAAdapters(settings: LoRASettings(rank: 4), model: model, seed: 1)
        model.attach(adapters)
        XCTAssertEqual(withoutGradients { model.logits(tokens: tokens, batch: 2, sequence: 6) }.scalars, before)
        for layer in 0..<2 {
            for target in LoRATarget.allCases {
                let (a, b) = adapters.pair(layer: layer, target: target)!
                let bound = 1 / Float(a.shape[1]).squareRoot()
                XCTAssertTrue(a.scalars.allSatisfy { abs($0) <= bound }, "A of \(target) beyond ±1/√in")
                XCTAssertGreaterThan(a.scalars.map(abs).max()!, 0.5 * bound, "A of \(target) should fill its range")
                XCTAssertTrue(b.scalars.allSatisfy { $0 == 0 })
            }
        }
        XCTAssertEqual(adapters.parameters.count, 2 * (4 * 16 + 16 * 4 + 2 * (4 * 16 + 8 * 4) + 4 * 16 + 16 * 4 + 2 * (4 * 16 + 24 * 4) + 4 * 24 + 16 * 4))
    }

    func testAdaptedForwardEqualsMergedWeightsAndDisablingGivesTheBase() {
        let model = makeModel()
        let base = loss(model)
        model.attach(randomAdapters(model, settings: LoRASettings(rank: 3, alpha: 5, targets: [.q, .v, .down])))
        let adapted = withoutGradients { model.logits(tokens: tokens, batch: 2, sequence: 6) }.scalars
        XCTAssertNotEqual(loss(model), base)
        model.adaptersEnabled = false
        XCTAssertEqual(loss(model), base)
        model.adaptersEnabled = true
        // Merged in place for the duration of a closure, then the exact base weights back.
        let saved = model.parameters.values.pointer.withMemoryRebound(to: UInt32.self, capacity: model.parameters.count) { Array(UnsafeBufferPointer(start: $0, count: model.parameters.count)) }
        let merged = model.withAdaptersMerged { withoutGradients { model.logits(tokens: tokens, batch: 2, sequence: 6) }.scalars }
        for (x, y) in zip(merged, adapted) { XCTAssertEqual(x, y, accuracy: 1e-5) }
        let after = model.parameters.values.pointer.withMemoryRebound(to: UInt32.self, capacity: model.parameters.count) { Array(UnsafeBufferPointer(start: $0, count: model.parameters.count)) }
        XCTAssertEqual(saved, after, "withAdaptersMerged must restore the base bit for bit")
        model.mergeAdapters()
        XCTAssertNil(model.adapters)
        let folded = withoutGradients { model.logits(tokens: tokens, batch: 2, sequence: 6) }.scalars
        for (x, y) in zip(folded, adapted) { XCTAssertEqual(x, y, accuracy: 1e-5) }
    }

    /// d(loss)/dA and d(loss)/dB against central differences (in double-checked float: a few
    /// elements of every matrix, tolerances for float32 forward passes), and no gradient at all
    /// for the frozen base.
    func testGradientsMatchFiniteDifferencesAndTheBaseGetsNone() {
        let model = makeModel()
        let adapters = randomAdapters(model, settings: LoRASettings(rank: 2, alpha: 3))
        model.attach(adapters)
        model.parameters.freeze()
        adapters.parameters.zeroGradients()
        let tape = Tape()
        let l = tape.record { model.languageModelLoss(tokens: tokens, targets: targets, batch: 2, sequence: 6) }
        tape.backward(from: l)
        XCTAssertTrue(model.parameters.entries.allSatisfy { $0.tensor.gradIfPresent == nil }, "frozen weights get no gradient buffer")
        let gradients = Array(UnsafeBufferPointer(start: adapters.parameters.gradients.pointer, count: adapters.parameters.count))
        var rng = SeededRandom(seed: 2)
        var checked = 0
        for entry in adapters.parameters.entries {
            for _ in 0..<3 {
                let i = rng.nextInt(below: entry.tensor.count)
                let p = entry.tensor.data + i, original = p.pointee, h: Float = 1e-2
                p.pointee = original + h; let up = loss(model)
                p.pointee = original - h; let down = loss(model)
                p.pointee = original
                let numeric = (up - down) / (2 * h), analytic = gradients[entry.offset + i]
                XCTAssertEqual(analytic, numeric, accuracy: 2e-3 + 2e-2 * abs(numeric), "\(entry.name)[\(i)]")
                checked += 1
            }
        }
        XCTAssertEqual(checked, 3 * adapters.parameters.entries.count)
        XCTAssertGreaterThan(gradients.map(abs).max()!, 1e-4)
    }

    /// The fused op equals the same expression composed from plain ops, in value and in every
    /// gradient (x, W, A, B), with and without a dropout mask.
    func testFusedLoRALinearEqualsTheComposedExpression() {
        var rng = SeededRandom(seed: 21)
        let n = 6, inFeatures = 10, outFeatures = 7, rank = 3, scale: Float = 1.5
        let mask = Tensor(shape: [n, inFeatures], values: (0..<(n * inFeatures)).map { $0 % 3 == 0 ? 0 : 1.5 })
        for useMask in [false, true] {
            func leaves() -> (x: Tensor, w: Tensor, a: Tensor, b: Tensor) {
                var r = rng
                return (Tensor.randomNormal([n, inFeatures], rng: &r, requiresGrad: true), Tensor.randomNormal([outFeatures, inFeatures], rng: &r, requiresGrad: true),
                        Tensor.randomNormal([rank, inFeatures], rng: &r, requiresGrad: true), Tensor.randomNormal([outFeatures, rank], rng: &r, requiresGrad: true))
            }
            let weights = Tensor.randomNormal([n, outFeatures], rng: &rng)
            func run(_ fused: Bool) -> [[Float]] {
                let (x, w, a, b) = leaves()
                let tape = Tape()
                let y = tape.record { () -> Tensor in
                    let out = fused ? loraLinear(x, weight: w, a: a, b: b, scale: scale, dropoutMask: useMask ? mask : nil)
                        : linear(x, w) + linear(linear(useMask ? x * mask : x, a), b) * scale
                    return sum(out * weights)
                }
                tape.backward(from: y)
                return [[y.item], x.gradScalars!, w.gradScalars!, a.gradScalars!, b.gradScalars!]
            }
            let fused = run(true), composed = run(false)
            for (name, (f, c)) in zip(["value", "dx", "dW", "dA", "dB"], zip(fused, composed)) {
                XCTAssertEqual(f.count, c.count)
                for (p, q) in zip(f, c) { XCTAssertEqual(p, q, accuracy: 1e-4 * max(1, abs(q)), "\(name), mask \(useMask)") }
            }
        }
    }

    func testDropoutOnlyWhileRecording() {
        let model = makeModel()
        model.attach(randomAdapters(model, settings: LoRASettings(rank: 2, dropout: 0.5, targets: [.q])))
        let x = Tensor(shape: [64, 16], values: (0..<1024).map { Float($0 % 7) - 3 })
        let evaluation = withoutGradients { model.adapters!.delta(x, layer: 0, target: .q)! }.scalars
        XCTAssertEqual(withoutGradients { model.adapters!.delta(x, layer: 0, target: .q)! }.scalars, evaluation, "no dropout without a tape")
        let tape = Tape()
        let dropped = tape.record { model.adapters!.delta(x, layer: 0, target: .q)! }.scalars
        XCTAssertNotEqual(dropped, evaluation)
    }

    func testPEFTFilesRoundTrip() throws {
        let model = makeModel()
        let settings = LoRASettings(rank: 3, alpha: 6, dropout: 0.1, targets: [.q, .k, .up])
        let adapters = randomAdapters(model, settings: settings)
        adapters.baseModel = "/models/base"
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("loom-lora-\(UUID())")
        defer { try? FileManager.default.removeItem(at: directory) }
        try adapters.save(to: directory)
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("adapter_config.json"))) as! [String: Any]
        XCTAssertEqual(config["peft_type"] as? String, "LORA")
        XCTAssertEqual(config["task_type"] as? String, "CAUSAL_LM")
        XCTAssertEqual(config["r"] as? Int, 3)
        XCTAssertEqual(config["lora_alpha"] as? Int, 6)
        XCTAssertEqual(config["target_modules"] as? [String], ["q_proj", "k_proj", "up_proj"])
        XCTAssertEqual(config["base_model_name_or_path"] as? String, "/models/base")
        let names = try SafeTensors.header(directory.appendingPathComponent("adapter_model.safetensors")).tensors
        XCTAssertEqual(names["base_model.model.model.layers.1.self_attn.k_proj.lora_A.weight"]?.shape, [3, 16])
        XCTAssertEqual(names["base_model.model.model.layers.0.mlp.up_proj.lora_B.weight"]?.shape, [24, 3])
        let loaded = try LoRAAdapters.load(directory, for: model)
        XCTAssertEqual(loaded.settings, settings)
        XCTAssertEqual(memcmp(loaded.parameters.values.pointer, adapters.parameters.values.pointer, adapters.parameters.count * 4), 0)
    }

    /// Each broken adapter fails with a message naming the file and the tensor or field.
    func testBadAdaptersAreClearErrors() throws {
        let model = makeModel()
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("loom-lora-bad-\(UUID())")
        defer { try? FileManager.default.removeItem(at: root) }
        func adapterDirectory(_ name: String, settings: LoRASettings = LoRASettings(rank: 2, targets: [.q, .v]),
                              for other: LlamaModel? = nil) throws -> URL {
            let directory = root.appendingPathComponent(name)
            try LoRAAdapters(settings: settings, model: other ?? model, seed: 1).save(to: directory)
            return directory
        }
        func expectError(_ directory: URL, _ fragments: [String], file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertThrowsError(try LoRAAdapters.load(directory, for: model), file: file, line: line) { error in
                for fragment in fragments { XCTAssertTrue("\(error)".contains(fragment), "'\(error)' lacks '\(fragment)'", file: file, line: line) }
            }
        }
        func rewriteConfig(_ directory: URL, _ change: (inout [String: Any]) -> Void) throws {
            let url = directory.appendingPathComponent("adapter_config.json")
            var object = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
            change(&object)
            try JSONSerialization.data(withJSONObject: object).write(to: url)
        }
        func rewriteTensors(_ directory: URL, _ change: (inout [String: Tensor]) -> Void) throws {
            let url = directory.appendingPathComponent("adapter_model.safetensors")
            var tensors = try SafeTensors.load(url)
            change(&tensors)
            try SafeTensors.save(tensors, to: url)
        }
        let weights = "adapter_model.safetensors"
        // Another base model (more layers, wider): the recorded base shape differs.
        var wider = configuration; wider.hiddenSize = 32; wider.layerCount = 3
        let otherBase = LlamaModel(configuration: wider)
        expectError(try adapterDirectory("other-base", for: otherBase), [weights, "hidden_size=32", "hidden_size=16"])
        // The same without Loom's metadata (a PEFT file): the extra layer's tensor is named.
        let foreign = try adapterDirectory("foreign", for: LlamaModel(configuration: { var c = configuration; c.layerCount = 3; return c }()))
        try rewriteTensors(foreign) { _ in }
        expectError(foreign, [weights, "base_model.model.model.layers.2.self_attn.q_proj.lora_A.weight", "not an adapter tensor"])
        // Rank in the config differs from the tensors'.
        let rank = try adapterDirectory("rank")
        try rewriteConfig(rank) { $0["r"] = 4 }
        expectError(rank, [weights, "lora_A.weight", "has shape [2, 16]", "[4, 16]"])
        // A missing tensor.
        let missing = try adapterDirectory("missing")
        try rewriteTensors(missing) { $0["base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"] = nil }
        expectError(missing, [weights, "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight", "missing"])
        // A target the model does not have, and a rank larger than a layer.
        let unknown = try adapterDirectory("unknown")
        try rewriteConfig(unknown) { $0["target_modules"] = ["q_proj", "c_attn"] }
        expectError(unknown, ["adapter_config.json", "c_attn"])
        let huge = try adapterDirectory("huge")
        try rewriteConfig(huge) { $0["r"] = 20 }
        expectError(huge, ["adapter_config.json", "r 20", "q_proj"])
        let dora = try adapterDirectory("dora")
        try rewriteConfig(dora) { $0["use_dora"] = true }
        expectError(dora, ["adapter_config.json", "use_dora"])
        expectError(root.appendingPathComponent("absent"), ["adapter_config.json", "not found"])
    }

    func testSettingsValidationNamesTheFlag() {
        XCTAssertThrowsError(try LoRASettings(rank: 0).validate(for: configuration)) { XCTAssertTrue("\($0)".contains("--lora-rank")) }
        XCTAssertThrowsError(try LoRASettings(rank: 17, targets: [.q]).validate(for: configuration)) {
            XCTAssertTrue("\($0)".contains("--lora-rank 17") && "\($0)".contains("q_proj"), "\($0)")
        }
        // k_proj is 8×16: rank 9 fits q_proj but not k_proj.
        XCTAssertNoThrow(try LoRASettings(rank: 9, targets: [.q]).validate(for: configuration))
        XCTAssertThrowsError(try LoRASettings(rank: 9, targets: [.q, .k]).validate(for: configuration)) { XCTAssertTrue("\($0)".contains("k_proj")) }
        XCTAssertThrowsError(try LoRASettings.parseTargets("q_proj,qkv")) { XCTAssertTrue("\($0)".contains("--lora-targets") && "\($0)".contains("qkv")) }
        XCTAssertEqual(try LoRASettings.parseTargets("v_proj, q_proj"), [.v, .q])
    }
}
