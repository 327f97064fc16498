import Foundation
import LoomTokenizer

/// What a resumed run needs besides the weights and the optimizer moments.
public struct TrainerState: Codable, Equatable, Sendable {
    /// Optimizer steps completed.
    public var step: Int
    /// The data sampler's generator, so a resumed run draws the same batches.
    public var rng: SeededRandom
    public var tokensSeen: Int
    /// Which stage wrote it: "pretrain", "sft", "reward", "ppo", "dpo", "grpo".
    public var stage: String
    /// Total steps the run was asked for (for the schedule).
    public var totalSteps: Int
    public var configuration: TrainingConfiguration?

    public init(step: Int, rng: SeededRandom, tokensSeen: Int, stage: String, totalSteps: Int,
                configuration: TrainingConfiguration? = nil) {
        self.step = step; self.rng = rng; self.tokensSeen = tokensSeen; self.stage = stage
        self.totalSteps = totalSteps; self.configuration = configuration
    }
}

public struct CheckpointError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A model directory with resume state:
/// `config.json`, `model.safetensors`, `tokenizer.json`, `tokenizer_config.json`,
/// `optimizer.safetensors` (AdamW moments) and `trainer_state.json`.
///
/// Every file is written to a temporary name and renamed into place; `trainer_state.json`
/// goes last and every file records the step it belongs to, so a run killed half-way
/// through a save is detected on resume instead of silently mixing two steps.
public enum Checkpoint {
    public static let optimizerFile = "optimizer.safetensors"
    public static let stateFile = "trainer_state.json"

    public static func save(model: LlamaModel, optimizer: AdamW?, state: TrainerState,
                            tokenizer: ByteLevelBPETokenizer?, to directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let stepTag = ["step": String(state.step), "stage": state.stage]
        if let tokenizer { try tokenizer.save(to: directory) }
        try model.save(directory: directory, metadata: stepTag)
        if let optimizer {
            let n = optimizer.parameters.count
            let first = Tensor(storage: optimizer.firstMoment, shape: [n])
            let second = Tensor(storage: optimizer.secondMoment, shape: [n])
            var meta = stepTag
            meta["adam_step"] = String(optimizer.step)
            try SafeTensors.save([("exp_avg", first), ("exp_avg_sq", second)], metadata: meta,
                                 to: directory.appendingPathComponent(optimizerFile))
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try writeAtomically(try encoder.encode(state), to: directory.appendingPathComponent(stateFile))
    }

    /// "the checkpoint of step N in DIR is kept", or that there is none yet: for error messages
    /// of a run that has to stop.
    public static func describeLastCheckpoint(_ directory: URL) -> String {
        guard let state = try? loadState(directory) else { return "no checkpoint has been written to \(directory.path) yet" }
        return "the checkpoint of step \(state.step) in \(directory.path) is kept"
    }

    public static func hasState(_ directory: URL) -> Bool {
        FileManager.default.fileExists(atPath: directory.appendingPathComponent(stateFile).path)
    }

    public static func loadState(_ directory: URL) throws -> TrainerState {
        let url = directory.appendingPathComponent(stateFile)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw CheckpointError("\(url.path): no trainer state to resume from (run without --resume first)")
        }
        do { return try JSONDecoder().decode(TrainerState.self, from: data) }
        catch { throw CheckpointError("\(url.path): \(describeDecodingError(error))") }
    }

    /// Restores weights into `model` and moments into `optimizer` from `directory`, checking
    /// that every file belongs to the step in `trainer_state.json`.
    public static func restore(model: LlamaModel, optimizer: AdamW, from directory: URL) throws -> TrainerState {
        let state = try loadState(directory)
        let weightsURL = directory.appendingPathComponent("model.safetensors")
        let optimizerURL = directory.appendingPathComponent(optimizerFile)
        for url in [weightsURL, optimizerURL] {
            let header = try SafeTensors.header(url)
            guard header.metadata["step"] == String(state.step) else {
                throw CheckpointError("\(url.path) is from step \(header.metadata["step"] ?? "?") but \(stateFile) says step \(state.step): the checkpoint was interrupted while being written")
            }
        }
        let saved = try LlamaModel.load(directory: directory, heads: model.heads)
        guard saved.parameters.count == model.parameters.count, saved.configuration == model.configuration else {
            throw CheckpointError("\(weightsURL.path): the checkpoint's model does not match the configuration being resumed")
        }
        model.parameters.copyValues(from: saved.parameters)
        let moments = try SafeTensors.load(optimizerURL)
        for (name, storage) in [("exp_avg", optimizer.firstMoment), ("exp_avg_sq", optimizer.secondMoment)] {
            guard let t = moments[name], t.count == storage.count else {
                throw CheckpointError("\(optimizerURL.path): tensor \(name) is missing or has the wrong size")
            }
            storage.pointer.update(from: t.data, count: t.count)
        }
        let adamStep = try SafeTensors.header(optimizerURL).metadata["adam_step"].flatMap(Int.init) ?? state.step
        optimizer.restore(step: adamStep)
        return state
    }
}
