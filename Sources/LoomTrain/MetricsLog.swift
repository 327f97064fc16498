import Foundation
import LoomSupport
import LoomData
import LoomDistributed

/// Appends one JSON object per line to `metrics.jsonl` in a run directory.
public final class MetricsLog {
    public let url: URL
    /// Nil for a log that discards its records (`init(discarding:)`).
    private let handle: FileHandle?

    /// Opens the log; when resuming from `step`, first drops lines logged after that step
    /// by the interrupted run (and a line a kill cut short), so the log reads as one
    /// continuous run.
    public init(directory: URL, resumingAfter step: Int? = nil) throws {
        url = directory.appendingPathComponent("metrics.jsonl")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        if let step, let text = try? String(contentsOf: url, encoding: .utf8) {
            let kept = text.split(separator: "\n").filter { line in
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return false }
                guard let s = object["step"] as? Int else { return true }
                return s <= step
            }
            try AtomicFile.write(Data((kept.joined(separator: "\n") + (kept.isEmpty ? "" : "\n")).utf8), to: url)
        } else if step == nil {
            try Data().write(to: url)
        }
        if !FileManager.default.fileExists(atPath: url.path) { try Data().write(to: url) }
        let handle = try FileHandle(forWritingTo: url)
        try handle.seekToEnd()
        self.handle = handle
    }

    /// A log that writes nothing: the ranks of a data-parallel run other than rank 0.
    public init(discarding directory: URL) {
        url = directory.appendingPathComponent("metrics.jsonl")
        handle = nil
    }

    /// Writes one record. JSON has no NaN or infinity: such values are written as `null`
    /// (JSONSerialization would otherwise refuse the whole record). Throws when the line cannot
    /// be written (a full disk): a run whose metrics are lost stops, keeping its last checkpoint.
    public func log(_ fields: [String: Any]) throws {
        guard let handle else { return }
        let finite = fields.mapValues { value -> Any in
            if let d = value as? Double, !d.isFinite { return NSNull() }
            if let f = value as? Float, !f.isFinite { return NSNull() }
            return value
        }
        guard let data = try? JSONSerialization.data(withJSONObject: finite, options: [.sortedKeys]) else {
            logLine("metrics: could not encode a record with keys \(fields.keys.sorted().joined(separator: ", ")); not written to \(url.path)")
            return
        }
        do {
            try handle.write(contentsOf: data + [0x0A])
        } catch {
            throw MetricsWriteError(path: url.path, reason: describeIOError(error))
        }
    }

    deinit { try? handle?.close() }

    /// Reads every line of a metrics file (for reports).
    public static func read(_ url: URL) -> [[String: Any]] {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }
}

/// A metrics line that could not be written.
public struct MetricsWriteError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String {
        "cannot write \(path): \(reason); stopping (checkpoints already written are kept)"
    }
}

/// Means of the first and the last `window` values (fewer when there are fewer): how a
/// per-step figure of RL training moved, since one batch of rollouts is too noisy to say.
/// NaN for no values.
public func windowMeans(_ values: [Double], window: Int = 10) -> (first: Double, last: Double) {
    guard !values.isEmpty else { return (.nan, .nan) }
    let n = min(max(window, 1), values.count)
    return (values.prefix(n).reduce(0, +) / Double(n), values.suffix(n).reduce(0, +) / Double(n))
}

/// Writes a line to standard error (progress and logs; standard output stays for results).
/// A failed write (closed or full stream) is ignored: see `StandardError`.
/// Only rank 0 of a data-parallel run prints (the others would repeat its lines).
public func logLine(_ text: String) {
    guard World.isPrimary else { return }
    StandardError.writeLine(text)
}
