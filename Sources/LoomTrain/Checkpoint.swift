import Foundation
import LoomSupport
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
    /// The settings that shape the run (`RunSignature`), compared on `--resume`. Absent in
    /// checkpoints written before it existed.
    public var signature: [String: String]?

    public init(step: Int, rng: SeededRandom, tokensSeen: Int, stage: String, totalSteps: Int,
                configuration: TrainingConfiguration? = nil, signature: [String: String]? = nil) {
        self.step = step; self.rng = rng; self.tokensSeen = tokensSeen; self.stage = stage
        self.totalSteps = totalSteps; self.configuration = configuration; self.signature = signature
    }
}

public struct CheckpointError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The files of one checkpoint: a model directory (`config.json`, `model.safetensors`,
/// `tokenizer.json`, `tokenizer_config.json`) plus `optimizer.safetensors` (AdamW moments)
/// and `trainer_state.json`. Every file records the step it belongs to, and `restore`
/// refuses a directory whose files disagree.
///
/// `save` writes into whatever directory it is given; `CheckpointStore` gives it a staging
/// directory and makes the checkpoint appear all at once.
public enum Checkpoint {
    public static let optimizerFile = "optimizer.safetensors"
    public static let stateFile = "trainer_state.json"
    /// Files of a checkpoint that are resume state, not part of the model a stage hands on.
    public static let resumeStateFiles: Set<String> = [optimizerFile, stateFile]

    public static func save(model: LlamaModel, optimizer: AdamW?, state: TrainerState,
                            tokenizer: ByteLevelBPETokenizer?, to directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let stepTag = ["step": String(state.step), "stage": state.stage]
        if let tokenizer { try tokenizer.save(to: directory) }
        CheckpointFaults.fileWritten()
        if let adapters = model.adapters {
            try adapters.save(to: directory, metadata: stepTag)   // LoRA: the frozen base is not part of the run
        } else {
            try model.save(directory: directory, metadata: stepTag)
        }
        CheckpointFaults.fileWritten()
        if let optimizer {
            let n = optimizer.parameters.count
            let first = Tensor(storage: optimizer.firstMoment, shape: [n])
            let second = Tensor(storage: optimizer.secondMoment, shape: [n])
            var meta = stepTag
            meta["adam_step"] = String(optimizer.step)
            try SafeTensors.save([("exp_avg", first), ("exp_avg_sq", second)], metadata: meta,
                                 to: directory.appendingPathComponent(optimizerFile))
            CheckpointFaults.fileWritten()
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try encoder.encode(state), to: directory.appendingPathComponent(stateFile))
        CheckpointFaults.fileWritten()
    }

    public static func loadState(_ directory: URL) throws -> TrainerState {
        let url = directory.appendingPathComponent(stateFile)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw CheckpointError("\(url.path): no trainer state to resume from")
        }
        do { return try JSONDecoder().decode(TrainerState.self, from: data) }
        catch { throw CheckpointError("\(url.path): \(describeDecodingError(error))") }
    }

    /// Restores weights into `model` and moments into `optimizer` from `directory`, after
    /// checking that every file belongs to the step in `trainer_state.json` and fits the model
    /// (nothing is copied from a checkpoint that fails a check).
    public static func restore(model: LlamaModel, optimizer: AdamW, from directory: URL) throws -> TrainerState {
        let state = try loadState(directory)
        let weightsURL = directory.appendingPathComponent(model.adapters == nil ? "model.safetensors" : LoRAAdapters.weightsFile)
        let optimizerURL = directory.appendingPathComponent(optimizerFile)
        for url in [weightsURL, optimizerURL] {
            let header = try SafeTensors.header(url)
            guard header.metadata["step"] == String(state.step) else {
                throw CheckpointError("\(url.path) is from step \(header.metadata["step"] ?? "?") but \(stateFile) says step \(state.step): the checkpoint was interrupted while being written")
            }
        }
        let trained: ParameterStore, savedValues: ParameterStore
        if let adapters = model.adapters {
            let saved = try LoRAAdapters.load(directory, for: model)
            guard saved.settings == adapters.settings else {
                throw CheckpointError("\(directory.appendingPathComponent(LoRAAdapters.configFile).path): the checkpoint's LoRA settings \(saved.settings) differ from the run's \(adapters.settings)")
            }
            (trained, savedValues) = (adapters.parameters, saved.parameters)
        } else {
            let saved = try LlamaModel.load(directory: directory, heads: model.heads)
            guard saved.parameters.count == model.parameters.count, saved.configuration == model.configuration else {
                throw CheckpointError("\(weightsURL.path): the checkpoint's model does not match the configuration being resumed")
            }
            (trained, savedValues) = (model.parameters, saved.parameters)
        }
        let moments = try SafeTensors.load(optimizerURL)
        var restored: [(tensor: Tensor, into: Storage)] = []
        for (name, storage) in [("exp_avg", optimizer.firstMoment), ("exp_avg_sq", optimizer.secondMoment)] {
            guard let t = moments[name], t.count == storage.count else {
                throw CheckpointError("\(optimizerURL.path): tensor \(name) is missing or has the wrong size")
            }
            restored.append((t, storage))
        }
        let adamStep = try SafeTensors.header(optimizerURL).metadata["adam_step"].flatMap(Int.init) ?? state.step
        trained.copyValues(from: savedValues)
        for (tensor, storage) in restored {
            // The tensor is bound for the whole copy: its storage must outlive the raw pointer.
            withExtendedLifetime(tensor) { storage.pointer.update(from: tensor.data, count: storage.count) }
        }
        optimizer.restore(step: adamStep)
        return state
    }

    /// `restore` for a run being resumed: the checkpoint must come from `stage`, and the settings
    /// it was written with must equal `signature` (else the changes are listed, unless
    /// `allowChanges`) — checked before anything is copied.
    /// `runDirectory` (the stage's output): the saved settings' paths are read relative to it as
    /// `RunSignature.relativized` writes them, so a checkpoint written before paths were stored
    /// that way, in a run that has not moved, still matches.
    public static func resumeRun(stage: String, signature: [String: String], allowChanges: Bool,
                                 model: LlamaModel, optimizer: AdamW, from directory: URL, runDirectory: URL? = nil) throws -> TrainerState {
        let saved = try loadState(directory)
        guard saved.stage == stage else { throw CheckpointError("\(directory.path) holds a \(saved.stage) checkpoint, not \(stage)") }
        let savedSignature = saved.signature.map { signature in runDirectory.map { RunSignature.relativized(signature, to: $0) } ?? signature }
        try RunSignature.check(saved: savedSignature, current: signature, allowChanges: allowChanges, checkpoint: directory)
        return try restore(model: model, optimizer: optimizer, from: directory)
    }
}

/// How a stage treats its output directory.
public enum RunMode: String, Sendable {
    /// Start a new run; an output directory that already holds a run is an error.
    case fresh
    /// Start a new run, first removing the run files (model, checkpoints, metrics) already there.
    case overwrite
    /// Continue the run in the output directory from its latest complete checkpoint.
    case resume
    /// Continue the run if the output directory holds one, else start it (the pipeline's `--resume`).
    case resumeIfPresent

    public init(resume: Bool, overwrite: Bool) {
        self = resume ? .resume : overwrite ? .overwrite : .fresh
    }
}

/// The checkpoints of a run directory, written the way trainers people trust write them
/// (PyTorch Lightning, Hugging Face `Trainer`):
///
/// ```
/// RUN/checkpoints/step-00000100/   a complete checkpoint (model directory + resume state)
/// RUN/checkpoints/step-00000200/
/// RUN/checkpoints/latest           "step-00000200": the checkpoint to resume from
/// RUN/config.json, model.safetensors, tokenizer*.json   the finished model (`exportModel`)
/// ```
///
/// A save writes every file into `checkpoints/.staging-…`, fsyncs the files and the
/// directory, renames the directory to `step-N` (atomic), fsyncs `checkpoints/`, then switches
/// `latest` by an atomic rename. A kill at any moment leaves either the old or the new
/// checkpoint complete, never a mix; staging left by a killed save is removed at the next
/// start. The last `keep` checkpoints are kept. On resume, a `latest` that is missing or does
/// not pass `Checkpoint.restore`'s checks falls back to the newest older checkpoint, with a
/// message.
public struct CheckpointStore {
    public let runDirectory: URL
    /// How many complete checkpoints to keep (at least 1).
    public var keep: Int

    public static let directoryName = "checkpoints"
    public static let latestFile = "latest"
    static let stagingPrefix = ".staging-"

    public init(runDirectory: URL, keep: Int = 2) {
        self.runDirectory = runDirectory; self.keep = max(1, keep)
    }

    public var directory: URL { runDirectory.appendingPathComponent(Self.directoryName) }

    public static func stepDirectoryName(_ step: Int) -> String { String(format: "step-%08d", step) }

    /// The step of a `step-N` directory name, or nil for any other name.
    static func step(ofDirectoryName name: String) -> Int? {
        guard name.hasPrefix("step-") else { return nil }
        return Int(name.dropFirst(5))
    }

    /// Writes checkpoint `step`: `write` fills the staging directory it is given.
    @discardableResult
    public func save(step: Int, _ write: (URL) throws -> Void) throws -> URL {
        let fm = FileManager.default
        CheckpointFaults.beginSave(step: step)
        try fm.createDirectory(at: directory, withIntermediateDirectories: true)
        removeStaleFiles()
        let staging = directory.appendingPathComponent("\(Self.stagingPrefix)\(Self.stepDirectoryName(step))-\(getpid())")
        try? fm.removeItem(at: staging)
        try fm.createDirectory(at: staging, withIntermediateDirectories: true)
        do {
            try write(staging)
            try DurableFiles.syncTree(staging)
        } catch {
            try? fm.removeItem(at: staging)
            throw error
        }
        let final = directory.appendingPathComponent(Self.stepDirectoryName(step))
        if fm.fileExists(atPath: final.path) {
            // The same step saved again (a finished run resumed): the new copy replaces it.
            let aside = directory.appendingPathComponent("\(Self.stagingPrefix)replaced-\(Self.stepDirectoryName(step))-\(getpid())")
            try DurableFiles.rename(final, to: aside)
            try DurableFiles.rename(staging, to: final)
            try? fm.removeItem(at: aside)
        } else {
            try DurableFiles.rename(staging, to: final)
        }
        try DurableFiles.syncDirectory(directory)
        CheckpointFaults.fileWritten()
        try AtomicFile.write(Data((Self.stepDirectoryName(step) + "\n").utf8), to: directory.appendingPathComponent(Self.latestFile), durable: true)
        CheckpointFaults.fileWritten()
        rotate(keeping: final.lastPathComponent)
        return final
    }

    /// Complete checkpoints, newest step first.
    public func stepDirectories() -> [(step: Int, url: URL)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.compactMap { name in Self.step(ofDirectoryName: name).map { ($0, directory.appendingPathComponent(name)) } }
            .sorted { $0.step > $1.step }
    }

    /// The checkpoint `latest` names, if the pointer exists and names a directory.
    public func latest() -> URL? {
        guard let text = try? String(contentsOf: directory.appendingPathComponent(Self.latestFile), encoding: .utf8) else { return nil }
        let name = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard Self.step(ofDirectoryName: name) != nil else { return nil }
        let url = directory.appendingPathComponent(name)
        return FileManager.default.fileExists(atPath: url.path) ? url : nil
    }

    /// Where to resume from, in order of preference: the checkpoint `latest` names, then the
    /// other complete checkpoints newest first. A run directory written before checkpoints
    /// had their own directories (resume state at the top level) is its own only candidate.
    public func candidates() -> [URL] {
        var result: [URL] = []
        if let latest = latest() { result.append(latest) }
        for entry in stepDirectories() where !result.contains(entry.url) { result.append(entry.url) }
        if result.isEmpty && Checkpoint.hasLegacyState(runDirectory) { result.append(runDirectory) }
        return result
    }

    /// "the checkpoint of step N in DIR is kept", or that there is none yet: for the messages
    /// of a run that has to stop.
    public func describeLastCheckpoint() -> String {
        guard let latest = candidates().first, let state = try? Checkpoint.loadState(latest) else {
            return "no checkpoint has been written to \(runDirectory.path) yet"
        }
        return "the checkpoint of step \(state.step) in \(latest.path) is kept"
    }

    /// Whether the directory holds a run: checkpoints, resume state, a model or metrics.
    public func holdsRun() -> Bool {
        let fm = FileManager.default
        return !candidates().isEmpty || fm.fileExists(atPath: directory.path)
            || ["model.safetensors", "metrics.jsonl", Checkpoint.stateFile].contains { fm.fileExists(atPath: runDirectory.appendingPathComponent($0).path) }
    }

    /// Calls `restore` on each candidate until one succeeds; a candidate that fails is
    /// reported (with why) and the next older one is tried. Throws when none can be resumed.
    public func resume<T>(_ restore: (URL) throws -> T) throws -> (value: T, checkpoint: URL) {
        let candidates = candidates()
        guard !candidates.isEmpty else {
            throw CheckpointError("\(runDirectory.path): no checkpoint to resume from (run without --resume to start a new run)")
        }
        var failures: [String] = []
        for candidate in candidates {
            do {
                let value = try restore(candidate)
                if !failures.isEmpty {
                    logLine("note: resuming from the older checkpoint \(candidate.path) instead")
                }
                return (value, candidate)
            } catch {
                logLine("warning: cannot resume from \(candidate.path): \(error)")
                failures.append("\(candidate.lastPathComponent): \(error)")
            }
        }
        throw CheckpointError("\(runDirectory.path): no checkpoint can be resumed (\(failures.joined(separator: "; ")))")
    }

    /// Removes staging directories and temporary files left by a killed save.
    public func removeStaleFiles() {
        let fm = FileManager.default
        for folder in [runDirectory, directory] {
            for name in (try? fm.contentsOfDirectory(atPath: folder.path)) ?? []
            where name.hasPrefix(Self.stagingPrefix) || (name.hasPrefix(".") && name.contains(AtomicFile.temporaryMarker)) {
                try? fm.removeItem(at: folder.appendingPathComponent(name))
            }
        }
    }

    /// Keeps the newest `keep` checkpoints and the one named `current`.
    func rotate(keeping current: String) {
        for (index, entry) in stepDirectories().enumerated() where index >= keep && entry.url.lastPathComponent != current {
            try? FileManager.default.removeItem(at: entry.url)
        }
    }

    /// Makes the model files of `checkpoint` (everything but the resume state and
    /// subdirectories) the run directory's own, each replaced atomically: the run directory is
    /// then a plain Hugging Face model directory for the next stage. Files are hard links
    /// where the file system allows (checkpoints are never modified in place), else copies.
    public func exportModel(from checkpoint: URL, excluding extra: Set<String> = []) throws {
        let fm = FileManager.default
        let skip = Checkpoint.resumeStateFiles.union(extra)
        for name in try fm.contentsOfDirectory(atPath: checkpoint.path).sorted() where !skip.contains(name) && !name.hasPrefix(".") {
            let source = checkpoint.appendingPathComponent(name)
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: source.path, isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
            let target = runDirectory.appendingPathComponent(name)
            let temporary = runDirectory.appendingPathComponent(".\(name)\(AtomicFile.temporaryMarker)\(getpid())")
            try? fm.removeItem(at: temporary)
            if link(source.path, temporary.path) != 0 {
                do { try fm.copyItem(at: source, to: temporary); try DurableFiles.syncFile(temporary) }
                catch { throw CheckpointError("cannot copy \(source.path) to \(temporary.path): \(error.localizedDescription)") }
            }
            try DurableFiles.rename(temporary, to: target)
        }
        try DurableFiles.syncDirectory(runDirectory)
    }

    /// Removes what a run leaves in its directory (checkpoints, model files, metrics, resume
    /// state), and nothing else: `--overwrite`.
    public func removeRun(extraFiles: [String] = []) throws {
        let fm = FileManager.default
        let names = [Self.directoryName, "metrics.jsonl", "config.json", "model.safetensors", LoRAAdapters.configFile, LoRAAdapters.weightsFile, "tokenizer.json", "tokenizer_config.json",
                     "generation_config.json", "special_tokens_map.json"] + Array(Checkpoint.resumeStateFiles) + extraFiles
        for name in names {
            let url = runDirectory.appendingPathComponent(name)
            guard fm.fileExists(atPath: url.path) else { continue }
            do { try fm.removeItem(at: url) }
            catch { throw CheckpointError("--overwrite: cannot remove \(url.path): \(error.localizedDescription)") }
        }
    }
}

extension Checkpoint {
    /// A run directory from before per-step checkpoint directories: resume state at its top.
    static func hasLegacyState(_ directory: URL) -> Bool {
        FileManager.default.fileExists(atPath: directory.appendingPathComponent(stateFile).path)
            && FileManager.default.fileExists(atPath: directory.appendingPathComponent(optimizerFile).path)
    }
}

/// An exclusive lock on a run directory (`flock` on `DIR/.loom.lock`), held by the process
/// writing the run: a second `loom` started on the same directory stops at once instead of
/// interleaving its checkpoints with the first one's. The system releases it when the process
/// ends, however it ends (a SIGKILL included), so it never goes stale.
public final class RunLock {
    public let url: URL
    private var descriptor: Int32

    public static let fileName = ".loom.lock"

    public init(directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        url = directory.appendingPathComponent(Self.fileName)
        descriptor = open(url.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw CheckpointError("cannot open \(url.path): \(String(cString: strerror(errno)))") }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let holder = (try? String(contentsOf: url, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            close(descriptor)
            throw CheckpointError("\(directory.path) is in use by another loom process\(holder.isEmpty ? "" : " (pid \(holder))"); wait for it to end or write to another --out")
        }
        let pid = Data("\(getpid())\n".utf8)
        _ = ftruncate(descriptor, 0)
        _ = pid.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, 0) }
    }

    public func release() {
        guard descriptor >= 0 else { return }
        flock(descriptor, LOCK_UN)
        close(descriptor)
        descriptor = -1
    }

    deinit { release() }
}

/// Checks that a run directory may be used as a stage's output, before anything is written.
public enum RunDirectoryGuard {
    /// Refuses an output directory that is one of the stage's inputs, takes the directory's
    /// `RunLock` (another process writing there is an error), then refuses one that holds a run
    /// when the mode is `.fresh` or, with `.overwrite`, removes the old run's files. Returns the
    /// lock, to be held for the whole run.
    public static func prepare(_ store: CheckpointStore, mode: RunMode, inputs: [URL], extraRunFiles: [String] = []) throws -> RunLock {
        let output = canonical(store.runDirectory)
        for input in inputs where canonical(input) == output {
            throw CheckpointError("--out \(store.runDirectory.path) is also an input (\(input.path)); write the run to another directory")
        }
        // Nothing to resume in a directory that does not exist (a mistyped --out): say so before
        // the lock would create it, so that the failed command leaves no directory behind.
        if mode == .resume && !FileManager.default.fileExists(atPath: store.runDirectory.path) {
            throw CheckpointError("\(store.runDirectory.path): no checkpoint to resume from: the directory does not exist (run without --resume to start a new run)")
        }
        let lock = try RunLock(directory: store.runDirectory)
        switch mode {
        case .fresh:
            if store.holdsRun() {
                let what = (try? Checkpoint.loadState(store.candidates().first ?? store.runDirectory)).map { "a \($0.stage) run at step \($0.step)" } ?? "a run"
                throw CheckpointError("\(store.runDirectory.path) already holds \(what); pass --resume to continue it or --overwrite to replace it")
            }
        case .overwrite:
            try store.removeRun(extraFiles: extraRunFiles)
        case .resume, .resumeIfPresent:
            break
        }
        store.removeStaleFiles()
        return lock
    }

    static func canonical(_ url: URL) -> String {
        url.standardizedFileURL.resolvingSymlinksInPath().path
    }
}

/// The settings that shape a run, flattened to `name: value` strings so that a resumed run
/// can say exactly which ones changed. Built by reflection over an options value (nested
/// structures become `outer.inner`); `excluding` names fields that may change on resume
/// (where to stop, threads, logging and checkpoint cadence).
public enum RunSignature {
    public static let resumableChanges: Set<String> = [
        "steps", "threads", "logInterval", "evalInterval", "checkpointInterval", "keepCheckpoints",
        "mode", "allowChanges", "output", "outputDirectory", "stopAfterStep", "resume",
        // Sharding the optimizer state across ranks changes where it lives, not the run.
        "zeroStage",
    ]

    public static func of(_ value: Any, excluding: Set<String> = resumableChanges) -> [String: String] {
        var result: [String: String] = [:]
        flatten(value, prefix: "", excluding: excluding, into: &result)
        return result
    }

    private static func flatten(_ value: Any, prefix: String, excluding: Set<String>, into result: inout [String: String]) {
        guard let value = unwrap(value) else {
            if !prefix.isEmpty { result[prefix] = "none" }
            return
        }
        let mirror = Mirror(reflecting: value)
        let isRecord = (mirror.displayStyle == .struct || mirror.displayStyle == .class) && !(value is URL) && !mirror.children.isEmpty
        guard isRecord else {
            if !prefix.isEmpty { result[prefix] = describe(value) }
            return
        }
        for child in mirror.children {
            guard let label = child.label, !excluding.contains(label) else { continue }
            if "\(type(of: child.value))".contains("->") { continue }  // closures (evaluation hooks)
            flatten(child.value, prefix: prefix.isEmpty ? label : "\(prefix).\(label)", excluding: excluding, into: &result)
        }
    }

    /// The wrapped value of an optional (nil for none), or the value itself.
    private static func unwrap(_ value: Any) -> Any? {
        let mirror = Mirror(reflecting: value)
        guard mirror.displayStyle == .optional else { return value }
        return mirror.children.first.flatMap { unwrap($0.value) }
    }

    /// The value as text; a long one (a list of extra training pairs) as its length and a
    /// 64-bit FNV-1a hash, which is enough to tell that it changed.
    private static func describe(_ value: Any) -> String {
        if let url = value as? URL { return url.standardizedFileURL.path }
        if let urls = value as? [URL] { return "[" + urls.map { $0.standardizedFileURL.path }.joined(separator: ", ") + "]" }
        let text = String(describing: value)
        guard text.utf8.count > 200 else { return text }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return "\(text.utf8.count) characters, FNV-1a \(String(hash, radix: 16))"
    }

    /// The signature with every path under the parent of `runDirectory` (the stage's output)
    /// written as `<run>/…`: a pipeline's stages read their sibling directories (`RUN/base`,
    /// `RUN/tasks/…`), so a run directory copied or moved whole still resumes, while an input
    /// outside it (the pretraining text of the repository) stays absolute and a changed one is
    /// still refused. A value is a path (`describe` of a URL) or a list of them (`[a, b]`).
    public static func relativized(_ signature: [String: String], to runDirectory: URL) -> [String: String] {
        let parent = runDirectory.standardizedFileURL.deletingLastPathComponent().path
        let root = parent.hasSuffix("/") ? parent : parent + "/"
        guard root != "/" else { return signature }
        func relative(_ path: Substring) -> String {
            path.hasPrefix(root) ? "<run>/" + path.dropFirst(root.count) : (path == parent ? "<run>" : String(path))
        }
        return signature.mapValues { value in
            if value.hasPrefix("["), value.hasSuffix("]") {
                let items = value.dropFirst().dropLast()
                guard !items.isEmpty else { return value }
                return "[" + items.components(separatedBy: ", ").map { relative(Substring($0)) }.joined(separator: ", ") + "]"
            }
            return relative(Substring(value))
        }
    }

    /// `name: old → new` for every setting that differs (sorted), empty when none does.
    public static func changes(from old: [String: String], to new: [String: String]) -> [String] {
        Set(old.keys).union(new.keys).sorted().compactMap { key in
            old[key] == new[key] ? nil : "\(key): \(old[key] ?? "(absent)") → \(new[key] ?? "(absent)")"
        }
    }

    /// Settings added after runs were already saved, by their last name, with the value a
    /// run that predates them had: a checkpoint without the setting resumes when it has that value.
    public static let addedSettings: [String: String] = ["precision": MatrixPrecision.fp32.rawValue]

    /// `saved` with the value of every later-added setting it lacks but `current` has.
    static func completed(_ saved: [String: String], current: [String: String]) -> [String: String] {
        var result = saved
        for key in current.keys where saved[key] == nil {
            let name = key.split(separator: ".").last.map(String.init) ?? key
            if let old = addedSettings[name] { result[key] = old }
        }
        return result
    }

    /// Throws, listing the changed settings, unless `allowChanges`.
    public static func check(saved: [String: String]?, current: [String: String], allowChanges: Bool, checkpoint: URL) throws {
        guard let saved else { return }
        let changed = changes(from: completed(saved, current: current), to: current)
        guard !changed.isEmpty else { return }
        if allowChanges {
            logLine("note: resuming with changed settings (--allow-changes): " + changed.joined(separator: "; "))
        } else {
            throw CheckpointError("\(checkpoint.path) was written with other settings: " + changed.joined(separator: "; ")
                                  + ". Resume with the settings it was started with, or pass --allow-changes")
        }
    }
}

/// The durable file operations of a checkpoint save (fsync: `fsyncPath`, shared with
/// `AtomicFile.write(_:to:durable:)`).
enum DurableFiles {
    static func syncFile(_ url: URL) throws { try AtomicFile.sync(url.path, isDirectory: false) }

    static func syncDirectory(_ url: URL) throws { try AtomicFile.sync(url.path, isDirectory: true) }

    /// Syncs every file under `root`, then every directory, deepest first.
    static func syncTree(_ root: URL) throws {
        let fm = FileManager.default
        var directories = [root]
        if let enumerator = fm.enumerator(at: root, includingPropertiesForKeys: [.isDirectoryKey]) {
            for case let url as URL in enumerator {
                if (try? url.resourceValues(forKeys: [.isDirectoryKey]).isDirectory) == true { directories.append(url) }
                else { try syncFile(url) }
            }
        }
        for directory in directories.reversed() { try syncDirectory(directory) }
    }

    static func rename(_ from: URL, to: URL) throws {
        guard Glibc.rename(from.path, to.path) == 0 else {
            throw CheckpointError("cannot move \(from.path) to \(to.path): \(String(cString: strerror(errno)))")
        }
    }
}

/// Fault injection for the checkpoint tests and `Benchmarks/kill_storm.sh`:
/// `LOOM_FAULT_CHECKPOINT=K` (or `K@STEP`) kills the process with SIGKILL right after the
/// K-th file of a checkpoint save (of step STEP, else of the first save) is complete. The
/// files of a save, in order: the tokenizer files, `model.safetensors` (with `config.json`),
/// `optimizer.safetensors`, `trainer_state.json` (PPO then the critic's files and its own
/// state), the rename of the staging directory, the `latest` pointer. Without the variable
/// nothing happens.
public enum CheckpointFaults {
    private static let setting: (point: Int, step: Int?)? = {
        guard let text = ProcessInfo.processInfo.environment["LOOM_FAULT_CHECKPOINT"], !text.isEmpty else { return nil }
        let parts = text.split(separator: "@", maxSplits: 1).map(String.init)
        guard let point = Int(parts[0]), point >= 1 else { return nil }
        return (point, parts.count > 1 ? Int(parts[1]) : nil)
    }()
    private nonisolated(unsafe) static var currentStep: Int?
    private nonisolated(unsafe) static var count = 0
    private nonisolated(unsafe) static var savesSeen = 0

    /// Called when a save of `step` begins.
    public static func beginSave(step: Int) {
        currentStep = step; count = 0; savesSeen += 1
    }

    static func fileWritten() {
        guard let setting else { return }
        count += 1
        let stepMatches = setting.step.map { $0 == currentStep } ?? (savesSeen == 1)
        if stepMatches && count == setting.point {
            logLine("LOOM_FAULT_CHECKPOINT: killing the process after file \(count) of the checkpoint of step \(currentStep ?? -1)")
            kill(getpid(), SIGKILL)
        }
    }
}
