import Foundation

/// Per-op wall-clock accounting for `loom bench`. Off by default; when off, an op pays one
/// branch.
public enum Profiler {
    public enum Phase: String, Sendable { case forward, backward, optimizer }
    nonisolated(unsafe) public static var enabled = false
    nonisolated(unsafe) static var totals: [String: (seconds: Double, calls: Int)] = [:]

    @inline(__always)
    public static func time<T>(_ op: StaticString, phase: Phase, _ body: () throws -> T) rethrows -> T {
        guard enabled else { return try body() }
        let start = DispatchTime.now().uptimeNanoseconds
        let result = try body()
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
        let key = "\(op) \(phase.rawValue)"
        let old = totals[key] ?? (0, 0)
        totals[key] = (old.seconds + elapsed, old.calls + 1)
        return result
    }

    public static func reset() { totals.removeAll() }

    /// (op and phase, seconds, calls), most expensive first.
    public static func report() -> [(name: String, seconds: Double, calls: Int)] {
        totals.map { ($0.key, $0.value.seconds, $0.value.calls) }.sorted { $0.seconds > $1.seconds }
    }
}
