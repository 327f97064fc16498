import Foundation

/// A prompt with a preferred and a dispreferred response (DPO, pairwise reward models).
public struct PreferencePair: Equatable, Sendable {
    public var prompt: String
    public var chosen: String
    public var rejected: String
    public var source: String?

    public init(prompt: String, chosen: String, rejected: String, source: String? = nil) {
        self.prompt = prompt
        self.chosen = chosen
        self.rejected = rejected
        self.source = source
    }
}

/// K responses to one prompt and their order from best to worst (InstructGPT-style rankings).
/// `ranking` lists indices into `responses`, best first, and is a permutation of 0..<K, 2 ≤ K ≤ 9.
public struct RankedResponses: Equatable, Sendable {
    public static let allowedCounts = 2...9

    public var prompt: String
    public var responses: [String]
    public var ranking: [Int]
    public var source: String?

    /// Checks the ranking; throws `DataError.invalidOption` naming the problem.
    public init(prompt: String, responses: [String], ranking: [Int], source: String? = nil) throws {
        if let problem = Self.problem(responses: responses, ranking: ranking) {
            throw DataError.invalidOption("invalid ranking: \(problem)")
        }
        self.prompt = prompt
        self.responses = responses
        self.ranking = ranking
        self.source = source
    }

    /// Why `ranking` does not order `responses`, or nil when it does.
    public static func problem(responses: [String], ranking: [Int]) -> String? {
        guard allowedCounts.contains(responses.count) else {
            return "\"responses\" has \(responses.count) entries; a ranking needs \(allowedCounts.lowerBound) to \(allowedCounts.upperBound)"
        }
        guard ranking.count == responses.count else {
            return "\"ranking\" has \(ranking.count) entries for \(responses.count) responses"
        }
        var seen = [Bool](repeating: false, count: responses.count)
        for index in ranking {
            guard (0..<responses.count).contains(index) else {
                return "\"ranking\" contains \(index), outside 0..<\(responses.count)"
            }
            guard !seen[index] else {
                return "\"ranking\" is not a permutation of 0..<\(responses.count): \(index) appears twice"
            }
            seen[index] = true
        }
        return nil
    }

    /// The responses from best to worst.
    public var ordered: [String] {
        ranking.map { responses[$0] }
    }

    /// All C(K, 2) pairs: each response is preferred to every response ranked below it.
    public var pairs: [PreferencePair] {
        let best = ordered
        var result: [PreferencePair] = []
        result.reserveCapacity(best.count * (best.count - 1) / 2)
        for higher in 0..<best.count {
            for lower in (higher + 1)..<best.count {
                result.append(PreferencePair(prompt: prompt, chosen: best[higher], rejected: best[lower], source: source))
            }
        }
        return result
    }
}

/// One line of a preference file: a pair or a ranking.
public enum PreferenceRecord: Equatable, Sendable {
    case pair(PreferencePair)
    case ranking(RankedResponses)

    public var prompt: String {
        switch self {
        case .pair(let pair): return pair.prompt
        case .ranking(let ranked): return ranked.prompt
        }
    }

    /// The pair itself, or all C(K, 2) pairs of the ranking.
    public var pairs: [PreferencePair] {
        switch self {
        case .pair(let pair): return [pair]
        case .ranking(let ranked): return ranked.pairs
        }
    }
}

/// Preference data in JSON Lines; pairs and rankings may be mixed in one file:
///
///     {"prompt": "What is 2 + 3?", "chosen": "5", "rejected": "6"}
///     {"prompt": "What is 2 + 3?", "responses": ["6", "5", ""], "ranking": [1, 0, 2]}
///
///     let (records, skipped) = try PreferenceDataset.load(url)
///     let pairs = PreferenceDataset.pairs(records)   // rankings expanded into C(K, 2) pairs
public enum PreferenceDataset {
    public static func load(
        _ url: URL,
        skipBadLines: Bool = false,
        onSkip: ((DataError) -> Void)? = nil
    ) throws -> (records: [PreferenceRecord], skipped: Int) {
        let result = try AlignmentJSONL.load(url, skipBadLines: skipBadLines, onSkip: onSkip, parse: parse)
        return (result.items, result.skipped)
    }

    /// Every record as pairs.
    public static func pairs(_ records: [PreferenceRecord]) -> [PreferencePair] {
        records.flatMap(\.pairs)
    }

    /// The records split by kind.
    public static func separate(_ records: [PreferenceRecord]) -> (pairs: [PreferencePair], rankings: [RankedResponses]) {
        var pairs: [PreferencePair] = []
        var rankings: [RankedResponses] = []
        for record in records {
            switch record {
            case .pair(let pair): pairs.append(pair)
            case .ranking(let ranked): rankings.append(ranked)
            }
        }
        return (pairs, rankings)
    }

    public static func parse(_ line: JSONLine) throws -> PreferenceRecord {
        let prompt = try line.string("prompt")
        let source = try line.optionalString("source")
        if line.has("responses") || line.has("ranking") {
            let responseValues = try line.array("responses")
            var responses: [String] = []
            for (index, value) in responseValues.enumerated() {
                responses.append(try JSONLine.string(value, field: "responses[\(index)]", in: line))
            }
            var ranking: [Int] = []
            for (index, value) in try line.array("ranking").enumerated() {
                ranking.append(try JSONLine.integer(value, field: "ranking[\(index)]", in: line))
            }
            if let problem = RankedResponses.problem(responses: responses, ranking: ranking) {
                throw line.error(problem)
            }
            return .ranking(try RankedResponses(prompt: prompt, responses: responses, ranking: ranking, source: source))
        }
        if line.has("chosen") || line.has("rejected") {
            let chosen = try line.string("chosen")
            let rejected = try line.string("rejected")
            guard chosen != rejected else { throw line.error("\"chosen\" and \"rejected\" are the same text") }
            return .pair(PreferencePair(prompt: prompt, chosen: chosen, rejected: rejected, source: source))
        }
        throw line.error("expected \"chosen\" and \"rejected\" (a pair) or \"responses\" and \"ranking\" (a ranking)")
    }

    public static func jsonLine(_ pair: PreferencePair) -> String {
        var object = JSONObjectWriter()
        object.add("prompt", pair.prompt)
        object.add("chosen", pair.chosen)
        object.add("rejected", pair.rejected)
        object.add("source", pair.source)
        return object.finish()
    }

    public static func jsonLine(_ ranked: RankedResponses) -> String {
        var object = JSONObjectWriter()
        object.add("prompt", ranked.prompt)
        object.add("responses", strings: ranked.responses)
        object.add("ranking", integers: ranked.ranking)
        object.add("source", ranked.source)
        return object.finish()
    }

    public static func jsonLine(_ record: PreferenceRecord) -> String {
        switch record {
        case .pair(let pair): return jsonLine(pair)
        case .ranking(let ranked): return jsonLine(ranked)
        }
    }

    /// Writes the records atomically, one JSON object per line.
    public static func write(_ records: [PreferenceRecord], to url: URL) throws {
        try AlignmentJSONL.write(lines: records.map(jsonLine), to: url)
    }

    public static func write(_ pairs: [PreferencePair], to url: URL) throws {
        try AlignmentJSONL.write(lines: pairs.map(jsonLine), to: url)
    }

    public static func write(_ rankings: [RankedResponses], to url: URL) throws {
        try AlignmentJSONL.write(lines: rankings.map(jsonLine), to: url)
    }
}
