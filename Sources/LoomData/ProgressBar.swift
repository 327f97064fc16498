import Foundation
import LoomSupport
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A progress line on standard error: label, done/total, rate and time left.
///
/// On a terminal it redraws in place (at most ten times a second); when standard error is a
/// file or pipe (CI logs) it prints a line at every tenth of the way instead. Thread-safe, so
/// workers of `concurrentPerform` may all call `advance`.
///
///     let bar = ProgressBar(label: "encode", total: documents.count)
///     for document in documents { …; bar.advance() }
///     bar.finish()
public final class ProgressBar: @unchecked Sendable {
    public enum Unit: Sendable {
        case items(String)
        case bytes
    }

    public let label: String
    public private(set) var total: Int
    public private(set) var done = 0
    private let unit: Unit
    private let isTerminal: Bool
    private let start = Date()
    private var lastDraw = Date.distantPast
    private var lastDecile = -1
    private var finished = false
    private let lock = NSLock()

    /// Whether progress bars draw at all (tests and `--quiet` turn them off).
    nonisolated(unsafe) public static var isEnabled = true

    public init(label: String, total: Int, unit: Unit = .items("")) {
        self.label = label
        self.total = max(0, total)
        self.unit = unit
        self.isTerminal = isatty(STDERR_FILENO) != 0
    }

    public func advance(by amount: Int = 1) {
        lock.lock()
        defer { lock.unlock() }
        done += amount
        drawIfDue()
    }

    public func update(done newValue: Int) {
        lock.lock()
        defer { lock.unlock() }
        done = newValue
        drawIfDue()
    }

    /// Marks the bar complete and ends its line.
    public func finish() {
        lock.lock()
        defer { lock.unlock() }
        guard !finished else { return }
        finished = true
        if total == 0 || done < total { total = max(total, done) }
        draw(final: true)
    }

    private func drawIfDue() {
        guard Self.isEnabled, !finished else { return }
        if isTerminal {
            let now = Date()
            guard now.timeIntervalSince(lastDraw) >= 0.1 else { return }
            lastDraw = now
            draw(final: false)
        } else if total > 0 {
            let decile = min(10, done * 10 / total)
            guard decile > lastDecile, decile > 0, decile < 10 else { return }
            lastDecile = decile
            draw(final: false)
        }
    }

    private func draw(final: Bool) {
        guard Self.isEnabled else { return }
        let elapsed = Date().timeIntervalSince(start)
        let fraction = total > 0 ? min(1, Double(done) / Double(total)) : 1
        var line = "\(label) "
        if isTerminal {
            let width = 24
            let filled = Int(fraction * Double(width))
            line += "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "] "
        }
        line += String(format: "%3.0f%% ", fraction * 100)
        line += "\(format(done))/\(format(total))"
        if elapsed > 0 && done > 0 {
            line += "  \(format(Int(Double(done) / elapsed)))/s"
        }
        if final {
            line += "  " + DurationText.format(elapsed)
        } else if done > 0 && total > done {
            let remaining = elapsed * Double(total - done) / Double(done)
            line += "  ETA " + DurationText.format(remaining)
        }
        let text = isTerminal ? "\r\u{1B}[K" + line + (final ? "\n" : "") : line + "\n"
        StandardError.write(text)
    }

    private func format(_ value: Int) -> String {
        switch unit {
        case .bytes: return Self.formatBytes(value)
        case .items(let name): return Self.formatCount(value) + (name.isEmpty ? "" : " " + name)
        }
    }

    static func formatCount(_ value: Int) -> String {
        let v = Double(value)
        if v >= 1e9 { return String(format: "%.2fG", v / 1e9) }
        if v >= 1e6 { return String(format: "%.2fM", v / 1e6) }
        if v >= 1e4 { return String(format: "%.1fk", v / 1e3) }
        return "\(value)"
    }

    public static func formatBytes(_ value: Int) -> String {
        let v = Double(value)
        let kib = 1024.0, mib = kib * 1024, gib = mib * 1024
        if v >= gib { return String(format: "%.2f GiB", v / gib) }
        if v >= mib { return String(format: "%.2f MiB", v / mib) }
        if v >= kib { return String(format: "%.1f KiB", v / kib) }
        return "\(value) B"
    }
}
