import Foundation
import LoomInference

/// The server's counters, served at `GET /metrics` in the Prometheus text format (version
/// 0.0.4): requests by endpoint and status, tokens in and out, prompt tokens served from the
/// cache, queue length, running sequences, time to first token (a histogram) and the decode
/// throughput of recent steps.
public final class ServerMetrics: @unchecked Sendable {
    private let lock = NSLock()
    private var requests: [String: Int] = [:]          // "endpoint|status" → count
    private var promptTokens = 0, cachedTokens = 0, completionTokens = 0
    private var finishes: [String: Int] = [:]
    private var rejectedCount = 0
    private var queueLength = 0, activeSequences = 0
    private static let firstTokenBuckets: [Double] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
    private var firstTokenCounts = [Int](repeating: 0, count: ServerMetrics.firstTokenBuckets.count)
    private var firstTokenSum = 0.0, firstTokenTotal = 0
    /// Recent steps: (end time, seconds, tokens decoded), for tokens/s over the last 10 s.
    private var recentSteps: [(at: UInt64, seconds: Double, tokens: Int)] = []
    private var stepSeconds = 0.0, stepCount = 0, stepRows = 0

    public init() {}

    private func locked(_ body: () -> Void) { lock.lock(); body(); lock.unlock() }

    public func request(endpoint: String, status: Int) { locked { requests["\(endpoint)|\(status)", default: 0] += 1 } }
    func rejected() { locked { rejectedCount += 1 } }
    func setQueue(_ n: Int) { locked { queueLength = n } }
    func setActive(_ n: Int) { locked { activeSequences = n } }
    func admitted(promptTokens p: Int, cachedTokens c: Int) { locked { promptTokens += p; cachedTokens += c } }
    func generated(_ n: Int) { locked { completionTokens += n } }
    func finished(_ reason: FinishReason) { locked { finishes[reason.rawValue, default: 0] += 1 } }

    func firstToken(seconds: Double) {
        locked {
            firstTokenSum += seconds
            firstTokenTotal += 1
            for (i, bound) in Self.firstTokenBuckets.enumerated() where seconds <= bound { firstTokenCounts[i] += 1 }
        }
    }

    func step(seconds: Double, rows: Int, decodedTokens: Int) {
        let now = DispatchTime.now().uptimeNanoseconds
        locked {
            stepSeconds += seconds; stepCount += 1; stepRows += rows
            recentSteps.append((now, seconds, decodedTokens))
            let horizon = now > 10_000_000_000 ? now - 10_000_000_000 : 0
            if let firstKept = recentSteps.firstIndex(where: { $0.at >= horizon }), firstKept > 0 {
                recentSteps.removeFirst(firstKept)
            }
        }
    }

    /// Decoded tokens per second of forward-pass time over the last 10 seconds.
    public var recentTokensPerSecond: Double {
        lock.lock(); defer { lock.unlock() }
        let seconds = recentSteps.reduce(0) { $0 + $1.seconds }
        return seconds > 0 ? Double(recentSteps.reduce(0) { $0 + $1.tokens }) / seconds : 0
    }

    /// The Prometheus text exposition.
    public func render() -> String {
        let tokensPerSecond = recentTokensPerSecond
        lock.lock(); defer { lock.unlock() }
        var out = ""
        func family(_ name: String, _ type: String, _ help: String) { out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n" }
        family("loom_requests_total", "counter", "HTTP requests by endpoint and status code.")
        for key in requests.keys.sorted() {
            let parts = key.split(separator: "|", maxSplits: 1).map(String.init)
            out += "loom_requests_total{endpoint=\"\(parts[0])\",status=\"\(parts[1])\"} \(requests[key]!)\n"
        }
        family("loom_rejected_requests_total", "counter", "Requests refused because the queue was full.")
        out += "loom_rejected_requests_total \(rejectedCount)\n"
        family("loom_prompt_tokens_total", "counter", "Prompt tokens of admitted sequences.")
        out += "loom_prompt_tokens_total \(promptTokens)\n"
        family("loom_prompt_cached_tokens_total", "counter", "Prompt tokens whose keys and values came from the prompt cache.")
        out += "loom_prompt_cached_tokens_total \(cachedTokens)\n"
        family("loom_completion_tokens_total", "counter", "Generated tokens.")
        out += "loom_completion_tokens_total \(completionTokens)\n"
        family("loom_finished_sequences_total", "counter", "Finished sequences by finish reason.")
        for reason in ["stop", "length"] { out += "loom_finished_sequences_total{reason=\"\(reason)\"} \(finishes[reason, default: 0])\n" }
        family("loom_queue_length", "gauge", "Sequences waiting for a slot.")
        out += "loom_queue_length \(queueLength)\n"
        family("loom_active_sequences", "gauge", "Sequences decoding now.")
        out += "loom_active_sequences \(activeSequences)\n"
        family("loom_time_to_first_token_seconds", "histogram", "From arrival to the first generated token.")
        for (i, bound) in Self.firstTokenBuckets.enumerated() {
            out += "loom_time_to_first_token_seconds_bucket{le=\"\(bound)\"} \(firstTokenCounts[i])\n"
        }
        out += "loom_time_to_first_token_seconds_bucket{le=\"+Inf\"} \(firstTokenTotal)\n"
        out += "loom_time_to_first_token_seconds_sum \(firstTokenSum)\n"
        out += "loom_time_to_first_token_seconds_count \(firstTokenTotal)\n"
        family("loom_decode_tokens_per_second", "gauge", "Tokens generated per second of forward passes over the last 10 s, all sequences together.")
        out += "loom_decode_tokens_per_second \(tokensPerSecond)\n"
        family("loom_forward_steps_total", "counter", "Batched forward passes.")
        out += "loom_forward_steps_total \(stepCount)\n"
        family("loom_forward_seconds_total", "counter", "Time in batched forward passes.")
        out += "loom_forward_seconds_total \(stepSeconds)\n"
        family("loom_forward_rows_total", "counter", "Token rows computed by forward passes (prompt and decode).")
        out += "loom_forward_rows_total \(stepRows)\n"
        return out
    }
}
