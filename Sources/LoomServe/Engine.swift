import Foundation
import LoomInference
import LoomNN
import LoomTensor
import LoomTokenizer

/// What one sequence (one choice of one request) asks the scheduler for.
public struct SequenceSpec: Sendable {
    public var prompt: [Int32]
    public var maxTokens: Int
    /// Temperature, top-k, top-p and seed (the repetition penalty is not used: the OpenAI API
    /// has presence and frequency penalties instead).
    public var sampling: SamplingParameters
    public var presencePenalty: Float = 0
    public var frequencyPenalty: Float = 0
    /// Added to a token's logit before sampling, with the penalties (OpenAI's `logit_bias`: −100
    /// in effect bans the token, 100 in effect forces it). Log-probabilities stay the model's.
    public var logitBias: [Int32: Float] = [:]
    /// Texts that end the answer; the matched text is not returned.
    public var stop: [String] = []
    /// nil: no log-probabilities; k: the chosen token's and the k most likely.
    public var topLogprobs: Int?
    /// `response_format: json_object`.
    public var jsonObject = false

    public init(prompt: [Int32], maxTokens: Int, sampling: SamplingParameters) {
        self.prompt = prompt; self.maxTokens = maxTokens; self.sampling = sampling
    }
}

/// A token's log-probability and its most likely alternatives (OpenAI's `logprobs` entries).
public struct TokenLogprob: Sendable {
    public struct Alternative: Sendable {
        public var token: String
        public var bytes: [UInt8]
        public var logprob: Float
    }
    public var token: String
    public var bytes: [UInt8]
    public var logprob: Float
    public var top: [Alternative]
}

/// What the scheduler reports about a sequence, in order: `started` once, `text` for each
/// piece of answer (possibly empty text with log-probabilities), `finished` once.
public enum SequenceEvent: Sendable {
    case started(promptTokens: Int, cachedTokens: Int)
    case text(String, logprobs: [TokenLogprob])
    case finished(FinishReason, completionTokens: Int)
}

/// The handle of a submitted sequence: cancelling frees its slot at the next step.
public final class SequenceTicket: @unchecked Sendable {
    private let lock = NSLock()
    private var isCancelled = false
    public func cancel() { lock.lock(); isCancelled = true; lock.unlock() }
    public var cancelled: Bool { lock.lock(); defer { lock.unlock() }; return isCancelled }
}

public enum EngineError: Error, CustomStringConvertible {
    case queueFull(limit: Int)
    case shuttingDown
    public var description: String {
        switch self {
        case .queueFull(let limit): return "the server is busy: \(limit) requests are already waiting; retry later"
        case .shuttingDown: return "the server is shutting down"
        }
    }
}

/// Continuous batching: up to `slots` sequences decode together, one batched forward pass per
/// step (every running sequence's new tokens are rows of the same matrix products); waiting
/// sequences join between steps as slots free up, in arrival order; finished and cancelled
/// ones leave. Each slot keeps its own rows of the KV cache, its sampler and seed, and the
/// products are batch-invariant (`forward(batchInvariant: true)`), so a sequence's tokens do
/// not depend on what else runs.
///
/// Prompt cache: a slot keeps the keys and values of its last sequence after it finishes; a
/// new sequence goes to the free slot that shares the longest prefix with its prompt (a chat's
/// next turn starts with the previous turn) and only the rest of its prompt is computed.
///
/// The scheduler runs on its own thread; events are delivered on that thread.
public final class InferenceEngine: @unchecked Sendable {
    public let model: LlamaModel
    public let tokenizer: ByteLevelBPETokenizer
    public let slotCount: Int
    /// Positions per slot: prompt plus answer must fit.
    public let context: Int
    public let queueLimit: Int
    public let metrics: ServerMetrics
    let stopTokens: Set<Int32>

    private let cache: KVCache
    private let condition = NSCondition()
    private var queue: [Waiting] = []
    private var slots: [Slot]
    private var clock: UInt64 = 0
    private var thread: Thread?
    /// Set on shutdown: running and waiting sequences end at the next step, new ones are refused.
    private var draining = false
    /// Each token's bytes, for the JSON constraint and log-probabilities.
    private lazy var tokenBytes: [[UInt8]] = (0..<tokenizer.vocabularySize).map { tokenizer.decodeBytes([$0]) }
    private lazy var singleByteToken: [Int32?] = {
        var table = [Int32?](repeating: nil, count: 256)
        for (id, bytes) in tokenBytes.enumerated() where bytes.count == 1 && table[Int(bytes[0])] == nil
            && !tokenizer.isSpecialToken(id) {
            table[Int(bytes[0])] = Int32(id)
        }
        return table
    }()

    struct Waiting {
        let spec: SequenceSpec
        let ticket: SequenceTicket
        let onEvent: @Sendable (SequenceEvent) -> Void
        let submitted: UInt64
    }

    final class Slot {
        let index: Int
        /// The tokens whose keys and values the slot's cache rows hold, in order.
        var cached: [Int32] = []
        var running: Running?
        var lastUsed: UInt64 = 0
        init(index: Int) { self.index = index }
    }

    final class Running {
        let spec: SequenceSpec
        let ticket: SequenceTicket
        let onEvent: @Sendable (SequenceEvent) -> Void
        let submitted: UInt64
        var sampler: Sampler
        var feed: [Int32]
        var generated: [Int32] = []
        var counts: [Int32: Int] = [:]
        var decoder: UTF8StreamDecoder
        /// Decoded text not yet sent: it might be the start of a stop string.
        var held = ""
        var constraint: JSONObjectConstraint?
        var firstTokenAt: UInt64?
        /// This sequence's logits row after penalties and masks, reused every step (a vocabulary
        /// of 49,152 would otherwise be a fresh 192 KiB array per token).
        var scores: [Float] = []
        init(_ w: Waiting, feed: [Int32], tokenizer: ByteLevelBPETokenizer) {
            spec = w.spec; ticket = w.ticket; onEvent = w.onEvent; submitted = w.submitted
            var sampling = w.spec.sampling
            sampling.repetitionPenalty = 1
            sampler = Sampler(sampling)
            self.feed = feed
            decoder = UTF8StreamDecoder(tokenizer: tokenizer)
            constraint = w.spec.jsonObject ? JSONObjectConstraint() : nil
        }
    }

    public init(model: LlamaModel, tokenizer: ByteLevelBPETokenizer, slots: Int, context: Int, queueLimit: Int,
                metrics: ServerMetrics) {
        self.model = model; self.tokenizer = tokenizer; self.slotCount = slots
        self.context = context; self.queueLimit = queueLimit; self.metrics = metrics
        stopTokens = Generator.endTokens(of: model, tokenizer: tokenizer)
        cache = KVCache(model: model, batch: slots, capacity: context)
        cache.commitMemory()   // resident memory stays flat under load (see KVCache.commitMemory)
        self.slots = (0..<slots).map { Slot(index: $0) }
        _ = tokenBytes
        _ = singleByteToken
    }

    /// Starts the scheduler thread.
    public func start() {
        let thread = Thread { [unowned self] in self.loop() }
        thread.name = "loom-scheduler"
        thread.stackSize = 16 << 20
        self.thread = thread
        thread.start()
    }

    /// Queues sequences (all of one request, or none of them when the queue is full).
    public func submit(_ specs: [SequenceSpec], onEvent: @escaping @Sendable (Int, SequenceEvent) -> Void) throws -> [SequenceTicket] {
        condition.lock()
        defer { condition.unlock() }
        guard !draining else { throw EngineError.shuttingDown }
        guard queue.count + specs.count <= queueLimit else {
            metrics.rejected()
            throw EngineError.queueFull(limit: queueLimit)
        }
        let now = DispatchTime.now().uptimeNanoseconds
        let tickets = specs.map { _ in SequenceTicket() }
        for (i, spec) in specs.enumerated() {
            queue.append(Waiting(spec: spec, ticket: tickets[i], onEvent: { onEvent(i, $0) }, submitted: now))
        }
        metrics.setQueue(queue.count)
        condition.signal()
        return tickets
    }

    /// Ends every running and waiting sequence at the next step (finish reason `stop`, with
    /// what was generated so far) and refuses new ones: a graceful shutdown then has no
    /// responses left to wait for.
    public func drain() {
        condition.lock()
        draining = true
        condition.signal()
        condition.unlock()
    }

    // MARK: - The scheduler

    private func loop() {
        while true {
            condition.lock()
            while queue.isEmpty && !slots.contains(where: { $0.running != nil }) { condition.wait() }
            if draining {
                let waiting = queue
                queue.removeAll()
                condition.unlock()
                for w in waiting { w.onEvent(.finished(.stop, completionTokens: 0)) }
                for slot in slots { if let r = slot.running { finish(slot, r, .stop, logprobs: []) } }
                metrics.setQueue(0)
                metrics.setActive(0)
                continue
            }
            queue.removeAll { $0.ticket.cancelled }
            admit()
            metrics.setQueue(queue.count)
            condition.unlock()
            for slot in slots where slot.running?.ticket.cancelled == true { slot.running = nil }
            metrics.setActive(slots.filter { $0.running != nil }.count)
            step()
            metrics.setActive(slots.filter { $0.running != nil }.count)
        }
    }

    /// Moves waiting sequences into free slots, oldest first; each goes to the free slot whose
    /// cache shares the longest prefix with its prompt (least recently used on a tie).
    private func admit() {
        while !queue.isEmpty {
            let free = slots.filter { $0.running == nil }
            guard !free.isEmpty else { return }
            let waiting = queue.removeFirst()
            let prompt = waiting.spec.prompt
            func shared(_ slot: Slot) -> Int {
                var n = 0
                let limit = min(slot.cached.count, prompt.count)
                while n < limit && slot.cached[n] == prompt[n] { n += 1 }
                return n
            }
            let scored = free.map { ($0, shared($0)) }
            let (slot, common) = scored.max { a, b in a.1 != b.1 ? a.1 < b.1 : a.0.lastUsed > b.0.lastUsed }!
            // At least one prompt token is computed: its logits choose the first answer token.
            let reuse = min(common, prompt.count - 1)
            cache.truncate(slot.index, to: min(reuse, cache.lengths[slot.index]))
            slot.cached = Array(prompt.prefix(reuse))
            clock += 1
            slot.lastUsed = clock
            slot.running = Running(waiting, feed: Array(prompt[reuse...]), tokenizer: tokenizer)
            metrics.admitted(promptTokens: prompt.count, cachedTokens: reuse)
            waiting.onEvent(.started(promptTokens: prompt.count, cachedTokens: reuse))
        }
    }

    private func step() {
        var feeds = [[Int32]](repeating: [], count: slotCount)
        for slot in slots { if let r = slot.running { feeds[slot.index] = r.feed } }
        let newTokens = feeds.reduce(0) { $0 + $1.count }
        guard newTokens > 0 else { return }
        let start = DispatchTime.now().uptimeNanoseconds
        let logits = model.forward(newTokens: feeds, cache: cache, batchInvariant: true)
        for slot in slots { slot.cached += feeds[slot.index] }
        let vocabulary = model.configuration.vocabularySize
        var row = 0, decoded = 0
        for slot in slots where !feeds[slot.index].isEmpty {
            if let running = slot.running {
                decoded += 1
                advance(slot, running, logits: logits.data + row * vocabulary)
            }
            row += 1
        }
        metrics.step(seconds: Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9, rows: newTokens, decodedTokens: decoded)
    }

    /// Chooses the next token of `running` from its logits, reports it, and ends the sequence
    /// when a stop token, a stop string, the token limit or the end of the JSON object comes.
    private func advance(_ slot: Slot, _ running: Running, logits: UnsafePointer<Float>) {
        let vocabulary = model.configuration.vocabularySize
        let known = tokenizer.vocabularySize
        let spec = running.spec
        if running.scores.count != vocabulary { running.scores = [Float](repeating: 0, count: vocabulary) }
        running.scores.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: logits, count: vocabulary) }
        var scores = running.scores
        running.scores = []   // `scores` owns the buffer for this step (no copy on write) and gives it back below
        defer { running.scores = scores }
        // Rows past the tokenizer's vocabulary have no text.
        for v in known..<vocabulary { scores[v] = -.infinity }
        var logprobs: [TokenLogprob] = []
        let logSoftmax = spec.topLogprobs != nil ? Self.logSoftmax(scores) : []

        var token: Int32
        if var constraint = running.constraint {
            let remaining = spec.maxTokens - running.generated.count
            let closing = constraint.closingBytes
            if remaining <= closing.count, let forced = singleByteToken[Int(closing[0])] {
                token = forced
            } else {
                applyPenalties(&scores, running)
                for v in 0..<known where scores[v] > -.infinity {
                    let bytes = tokenBytes[v]
                    if tokenizer.isSpecialToken(v) || stopTokens.contains(Int32(v)) || bytes.isEmpty || !constraint.allows(bytes) {
                        scores[v] = -.infinity
                    } else if remaining - 1 < closing.count + bytes.count + 4 {
                        // Near the limit: the token must leave room for the text that closes the object
                        // (a token of b bytes can lengthen that text by at most b + 4).
                        var after = constraint
                        after.advance(bytes)
                        if after.closingBytes.count > remaining - 1 { scores[v] = -.infinity }
                    }
                }
                token = scores.contains(where: { $0 > -.infinity })
                    ? scores.withUnsafeBufferPointer { running.sampler.sample(logits: $0.baseAddress!, vocabulary: vocabulary, context: []) }
                    : (singleByteToken[Int(closing[0])] ?? Int32(tokenizer.endOfTextID))
            }
            constraint.advance(tokenBytes[Int(token)])
            running.constraint = constraint
        } else {
            applyPenalties(&scores, running)
            token = scores.withUnsafeBufferPointer { running.sampler.sample(logits: $0.baseAddress!, vocabulary: vocabulary, context: []) }
        }
        // Log-probabilities of the tokens of the answer (a stop token is not part of it).
        if let top = spec.topLogprobs, !stopTokens.contains(token) { logprobs = [logprobEntry(token, logSoftmax: logSoftmax, top: top)] }

        let now = DispatchTime.now().uptimeNanoseconds
        if running.firstTokenAt == nil {
            running.firstTokenAt = now
            metrics.firstToken(seconds: Double(now - running.submitted) * 1e-9)
        }
        if stopTokens.contains(token) {
            finish(slot, running, .stop, logprobs: logprobs)
            return
        }
        running.generated.append(token)
        running.counts[token, default: 0] += 1
        metrics.generated(1)
        running.held += running.decoder.push(token)

        // A stop string ends the answer before it.
        if let (cut, _) = earliestStop(in: running.held, stops: spec.stop) {
            running.held = String(running.held[..<cut])
            finish(slot, running, .stop, logprobs: logprobs, dropDecoderTail: true)
            return
        }
        if running.constraint?.isComplete == true {
            finish(slot, running, .stop, logprobs: logprobs)
            return
        }
        if running.generated.count >= spec.maxTokens || cache.lengths[slot.index] >= cache.capacity {
            finish(slot, running, .length, logprobs: logprobs)
            return
        }
        // Send what cannot be the start of a stop string.
        let keep = Self.heldBack(running.held, stops: spec.stop)
        let sendEnd = running.held.index(running.held.endIndex, offsetBy: -keep)
        let send = String(running.held[..<sendEnd])
        running.held = String(running.held[sendEnd...])
        if !send.isEmpty || !logprobs.isEmpty { running.onEvent(.text(send, logprobs: logprobs)) }
        running.feed = [token]
    }

    private func finish(_ slot: Slot, _ running: Running, _ reason: FinishReason, logprobs: [TokenLogprob],
                        dropDecoderTail: Bool = false) {
        var text = running.held
        if !dropDecoderTail { text += running.decoder.flush() }
        if !text.isEmpty || !logprobs.isEmpty { running.onEvent(.text(text, logprobs: logprobs)) }
        running.onEvent(.finished(reason, completionTokens: running.generated.count))
        metrics.finished(reason)
        slot.running = nil
    }

    /// The request's changes to the distribution it samples from: presence and frequency
    /// penalties on the tokens generated so far, then the logit bias.
    private func applyPenalties(_ scores: inout [Float], _ running: Running) {
        let presence = running.spec.presencePenalty, frequency = running.spec.frequencyPenalty
        if presence != 0 || frequency != 0 {
            for (token, count) in running.counts {
                scores[Int(token)] -= presence + frequency * Float(count)
            }
        }
        for (token, bias) in running.spec.logitBias {
            scores[Int(token)] += bias
        }
    }

    private func logprobEntry(_ token: Int32, logSoftmax: [Float], top: Int) -> TokenLogprob {
        let known = tokenizer.vocabularySize
        var alternatives: [TokenLogprob.Alternative] = []
        if top > 0 {
            var best: [(Int, Float)] = []
            for v in 0..<known {
                let value = logSoftmax[v]
                if best.count < top || value > best[best.count - 1].1 {
                    let at = best.firstIndex { value > $0.1 } ?? best.count
                    best.insert((v, value), at: at)
                    if best.count > top { best.removeLast() }
                }
            }
            alternatives = best.map { .init(token: tokenizer.decode([$0.0]), bytes: tokenBytes[$0.0], logprob: $0.1) }
        }
        let t = Int(token)
        return TokenLogprob(token: tokenizer.decode([t]), bytes: t < known ? tokenBytes[t] : [], logprob: logSoftmax[t], top: alternatives)
    }

    static func logSoftmax(_ scores: [Float]) -> [Float] {
        let maximum = scores.max() ?? 0
        var total = 0.0
        for s in scores where s > -.infinity { total += Foundation.exp(Double(s - maximum)) }
        let shift = maximum + Float(Foundation.log(total))
        return scores.map { $0 - shift }
    }

    /// The earliest occurrence of any stop string in `text`.
    func earliestStop(in text: String, stops: [String]) -> (String.Index, String)? {
        var best: (String.Index, String)?
        for stop in stops where !stop.isEmpty {
            if let range = text.range(of: stop), best == nil || range.lowerBound < best!.0 { best = (range.lowerBound, stop) }
        }
        return best
    }

    /// How many characters at the end of `text` could begin a stop string (held back until
    /// the next token decides).
    static func heldBack(_ text: String, stops: [String]) -> Int {
        var keep = 0
        let characters = Array(text)
        for stop in stops where !stop.isEmpty {
            let s = Array(stop)
            for length in stride(from: min(s.count - 1, characters.count), through: 1, by: -1) where length > keep {
                if Array(characters.suffix(length)) == Array(s.prefix(length)) { keep = length; break }
            }
        }
        return keep
    }
}
