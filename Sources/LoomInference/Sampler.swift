import Foundation

/// How the next token is chosen from logits (the knobs of `transformers`' `generate` and
/// llama.cpp): temperature 0 means greedy; top-k keeps the k most likely tokens; top-p keeps
/// the smallest set whose probability reaches p; the repetition penalty (CTRL, as
/// `transformers`' `RepetitionPenaltyLogitsProcessor`) divides positive logits and multiplies
/// negative ones of tokens already present in the context.
public struct SamplingParameters: Codable, Equatable, Sendable {
    public var temperature: Float
    public var topK: Int
    public var topP: Float
    public var repetitionPenalty: Float
    public var seed: UInt64

    public init(temperature: Float = 1, topK: Int = 0, topP: Float = 1, repetitionPenalty: Float = 1, seed: UInt64 = 0) {
        self.temperature = temperature; self.topK = topK; self.topP = topP
        self.repetitionPenalty = repetitionPenalty; self.seed = seed
    }

    public static let greedy = SamplingParameters(temperature: 0)

    public func validate() throws {
        if temperature < 0 { throw ConfigurationError("temperature must be ≥ 0, got \(temperature)") }
        if topK < 0 { throw ConfigurationError("top-k must be ≥ 0, got \(topK)") }
        if !(topP > 0 && topP <= 1) { throw ConfigurationError("top-p must be in (0, 1], got \(topP)") }
        if repetitionPenalty <= 0 { throw ConfigurationError("repetition penalty must be > 0, got \(repetitionPenalty)") }
    }
}

/// Draws tokens from logits with a seeded generator (same seed and inputs → same tokens).
public struct Sampler {
    public var parameters: SamplingParameters
    public var rng: SeededRandom
    private var scratch: [Float] = []
    private var order: [Int32] = []

    public init(_ parameters: SamplingParameters) {
        self.parameters = parameters
        rng = SeededRandom(seed: parameters.seed)
    }

    /// Picks the next token from one row of logits; `context` is the sequence so far (prompt
    /// and generated tokens), used by the repetition penalty.
    public mutating func sample(logits: UnsafePointer<Float>, vocabulary: Int, context: [Int32]) -> Int32 {
        if scratch.count != vocabulary { scratch = [Float](repeating: 0, count: vocabulary) }
        for v in 0..<vocabulary { scratch[v] = logits[v] }
        if parameters.repetitionPenalty != 1 {
            for token in Set(context) where Int(token) < vocabulary {
                let l = scratch[Int(token)]
                scratch[Int(token)] = l > 0 ? l / parameters.repetitionPenalty : l * parameters.repetitionPenalty
            }
        }
        if parameters.temperature == 0 {
            var best = 0
            for v in 1..<vocabulary where scratch[v] > scratch[best] { best = v }
            return Int32(best)
        }
        // Candidates in decreasing logit order (all of them when no filter is set).
        let filtering = parameters.topK > 0 || parameters.topP < 1
        if order.count != vocabulary { order = (0..<Int32(vocabulary)).map { $0 } }
        var candidates: ArraySlice<Int32>
        if filtering {
            let s = scratch
            order.sort { s[Int($0)] > s[Int($1)] }
            candidates = order[0..<(parameters.topK > 0 ? min(parameters.topK, vocabulary) : vocabulary)]
        } else {
            candidates = order[0..<vocabulary]
        }
        let maxLogit = candidates.map { scratch[Int($0)] }.max()!
        var probabilities = candidates.map { Foundation.exp(Double((scratch[Int($0)] - maxLogit) / parameters.temperature)) }
        var total = probabilities.reduce(0, +)
        if parameters.topP < 1 {
            // Keep the smallest prefix whose mass reaches top-p (at least one token).
            var cumulative = 0.0, keep = 0
            for p in probabilities {
                cumulative += p / total
                keep += 1
                if cumulative >= Double(parameters.topP) { break }
            }
            probabilities = Array(probabilities[0..<keep])
            candidates = candidates.prefix(keep)
            total = probabilities.reduce(0, +)
        }
        var u = rng.nextDouble() * total
        for (i, token) in candidates.enumerated() {
            u -= probabilities[i]
            if u <= 0 { return token }
        }
        return candidates.last!
    }
}
