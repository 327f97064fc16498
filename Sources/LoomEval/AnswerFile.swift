import Foundation

/// A model's graded greedy answers, one JSON object a line (`loom eval --answers-out`):
/// `{"shots": k, "prompt": …, "answer": …, "response": …, "correct": true}` — `shots` only for
/// in-context evaluations. Two such files over the same problems give a paired comparison
/// (`ExactMatchResult.difference`, `loom eval --paired-with`), so a later stage can be compared
/// with an earlier one without evaluating the earlier model again.
public enum AnswerFile {
    /// The lines for `result`, tagged with `shots` when given.
    public static func lines(_ result: ExactMatchResult, shots: Int? = nil) throws -> [String] {
        try result.samples.map { sample in
            var object: [String: Any] = ["prompt": sample.prompt, "answer": sample.answer, "response": sample.response, "correct": sample.correct]
            if let shots { object["shots"] = shots }
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
            return String(decoding: data, as: UTF8.self)
        }
    }

    /// Reads the answers of `url`; with `shots`, only the lines of that in-context k (a file from
    /// an in-context evaluation holds one block per k, and needs it).
    public static func read(_ url: URL, shots: Int? = nil) throws -> ExactMatchResult {
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw EvaluationError("\(url.path): cannot read the answers file (\(error.localizedDescription))")
        }
        var samples: [ExactMatchResult.Sample] = [], shotsSeen = Set<Int>()
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            guard let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any],
                  let prompt = object["prompt"] as? String, let answer = object["answer"] as? String,
                  let response = object["response"] as? String, let correct = object["correct"] as? Bool else {
                throw EvaluationError("\(url.path) line \(index + 1): not an answer line (needs string \"prompt\", \"answer\", \"response\" and boolean \"correct\")")
            }
            let lineShots = object["shots"] as? Int
            if let lineShots { shotsSeen.insert(lineShots) }
            if let shots, lineShots != shots { continue }
            samples.append(.init(prompt: prompt, answer: answer, response: response, correct: correct))
        }
        if shots == nil, !shotsSeen.isEmpty {
            throw EvaluationError("\(url.path) holds in-context answers for k = \(shotsSeen.sorted().map(String.init).joined(separator: ", ")); say which k to compare with (--paired-shots)")
        }
        if let shots, samples.isEmpty {
            throw EvaluationError("\(url.path) holds no answers for k = \(shots) (it has k = \(shotsSeen.sorted().map(String.init).joined(separator: ", ")))")
        }
        return ExactMatchResult(correct: samples.filter(\.correct).count, total: samples.count, samples: samples)
    }

    /// `candidate` minus `baseline` on the same problems (paired bootstrap), or an error naming
    /// `baselineName` when the two do not hold the same problems in the same order.
    public static func pairedDifference(_ candidate: ExactMatchResult, baseline: ExactMatchResult, baselineName: String) throws -> PairedDifference {
        guard candidate.samples.count == baseline.samples.count,
              zip(candidate.samples, baseline.samples).allSatisfy({ $0.prompt == $1.prompt }) else {
            throw EvaluationError("\(baselineName): its \(baseline.samples.count) problems are not the \(candidate.samples.count) evaluated here in the same order; a paired comparison needs the same prompts file and --limit")
        }
        return candidate.difference(from: baseline)
    }
}

/// An evaluation input that cannot be used, with the file and the reason.
public struct EvaluationError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
