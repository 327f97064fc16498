import Foundation

/// How good a response to a task is, best first; the order the ranking rule follows.
public enum ResponseGrade: Int, CaseIterable, Comparable, Sendable {
    /// Exactly the answer.
    case correctAndClean = 0
    /// The answer with a filler sentence around it (or a trailing period).
    case correctButRambling = 1
    /// A plausible wrong answer: off by one, letters swapped, another field of the record.
    case wrong = 2
    /// Not an answer at all: empty, unrelated text, repeated tokens, the prompt echoed.
    case offFormat = 3

    public static func < (lhs: ResponseGrade, rhs: ResponseGrade) -> Bool {
        lhs.rawValue < rhs.rawValue
    }

    public var label: String {
        switch self {
        case .correctAndClean: return "correct-and-clean"
        case .correctButRambling: return "correct-but-rambling"
        case .wrong: return "wrong"
        case .offFormat: return "off-format"
        }
    }
}

/// A response with its grade, and whether it came from a model or was constructed.
public struct GradedResponse: Equatable, Sendable {
    public var text: String
    public var grade: ResponseGrade
    public var isModelSample: Bool

    public init(text: String, grade: ResponseGrade, isModelSample: Bool = false) {
        self.text = text
        self.grade = grade
        self.isModelSample = isModelSample
    }
}

/// Builds rankings (for the reward model) and preference pairs (for DPO) for prompts with a
/// known answer, by a stated rule:
///
///     correct and clean  >  correct but rambling  >  wrong  >  off-format
///
/// Each grade is filled by one response, so a ranking has K = 4 and no ties. Model samples may
/// be passed in: they are graded by the verifier (exactly the answer → correct-and-clean; the
/// answer up to whitespace and a final period → correct-but-rambling; empty → off-format;
/// anything else → wrong) and take the place of the constructed response of their grade, the
/// first sample of a grade winning. Response order within a line is shuffled; `ranking` gives
/// the order. Every line is labelled `"source": "constructed: …"`.
///
///     var builder = RankingBuilder(seed: 7)
///     let ranked = builder.ranking(for: task)                   // 4 responses, best → worst
///     let pair = builder.preferencePair(for: task)              // reference answer over a bad one
public struct RankingBuilder {
    public static let rule = "correct-and-clean > correct-but-rambling > wrong > off-format"

    private var rng: TaskRandom
    /// Whether half the constructed wrong answers of `ranking(for:)` are decoys: training
    /// rankings for a reward model that a policy will optimise against (hard negatives).
    public var decoys: Bool

    public init(seed: UInt64, decoys: Bool = false) {
        rng = TaskRandom(seed: seed, stream: "RankingBuilder")
        self.decoys = decoys
    }

    /// The grade of a model sample for a prompt whose answer is `answer`.
    public static func grade(sample: String, answer: String) -> ResponseGrade {
        let trimmed = sample.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed == answer.trimmingCharacters(in: .whitespacesAndNewlines) { return .correctAndClean }
        if InstructionTasks.verify(response: sample, answer: answer) { return .correctButRambling }
        if trimmed.isEmpty { return .offFormat }
        return .wrong
    }

    /// A ranking for a generated task, its constructed wrong answer one of the task's plausible
    /// wrong answers, or with `decoys` half of the time a decoy (`decoyAnswer(for:)`).
    public mutating func ranking(for task: InstructionTask, samples: [String] = []) -> RankedResponses {
        let decoy = decoys && rng.below(2) == 0 ? decoyAnswer(for: task) : nil
        return ranking(prompt: task.prompt, answer: task.answer, distractors: decoy.map { [$0] } ?? task.distractors, samples: samples)
    }

    /// The right answer of another problem of the task's kind, drawn by the generator, that is
    /// wrong for this one (nil when eight draws find none). Off-by-one wrong answers leave the
    /// most common right answers ("1" for letter occurrences) almost never wrong, and a reward
    /// model trained on them learned to like "1" for its own sake: GRPO against it answered "1"
    /// to everything (32 % held-out exact match, from 68 %). Decoys are wrong as often as their
    /// kind makes them right, so only checking the answer against the prompt ranks them.
    /// `InstructionTaskFiles.rankings` uses decoys in training rankings only.
    public mutating func decoyAnswer(for task: InstructionTask) -> String? {
        for _ in 0..<8 {
            let other = InstructionTasks.drawProblem(task.kind, &rng).answer
            if !InstructionTasks.verify(response: other, answer: task.answer) { return other }
        }
        return nil
    }

    /// A ranking for any prompt with a known answer. Without `distractors`, wrong answers are
    /// made from the answer (a number off by one, two letters swapped).
    public mutating func ranking(prompt: String, answer: String, distractors: [String] = [], samples: [String] = []) -> RankedResponses {
        var slots = constructedResponses(prompt: prompt, answer: answer, distractors: distractors)
        var filledBySample = Set<ResponseGrade>()
        var used = 0
        for sample in samples {
            let grade = Self.grade(sample: sample, answer: answer)
            guard !filledBySample.contains(grade), !slots.contains(where: { $0.text == sample && $0.grade != grade }) else { continue }
            filledBySample.insert(grade)
            slots[grade.rawValue] = GradedResponse(text: sample, grade: grade, isModelSample: true)
            used += 1
        }
        var order = Array(slots.indices)
        rng.shuffle(&order)
        let responses = order.map { slots[$0].text }
        // Position of each grade in the shuffled list, best grade first.
        let ranking = ResponseGrade.allCases.map { grade in order.firstIndex(where: { slots[$0].grade == grade })! }
        var source = "constructed: ranking rule \(Self.rule)"
        if used > 0 { source += "; \(used) of \(samples.count) \(Self.modelSamplesLabel)" }
        // Four distinct responses and a permutation by construction.
        return try! RankedResponses(prompt: prompt, responses: responses, ranking: ranking, source: source)
    }

    static let modelSamplesLabel = "model samples graded by the verifier"

    /// Whether `ranked` (read back from a file `ranking` wrote) holds at least one model sample.
    public static func holdsModelSamples(_ ranked: RankedResponses) -> Bool {
        ranked.source?.contains(modelSamplesLabel) ?? false
    }

    /// The reference answer over a worse response: a plausible wrong answer two times in three,
    /// an off-format one otherwise (never the empty string, which some trainers cannot score).
    public mutating func preferencePair(for task: InstructionTask) -> PreferencePair {
        preferencePair(prompt: task.prompt, answer: task.answer, distractors: task.distractors)
    }

    public mutating func preferencePair(prompt: String, answer: String, distractors: [String] = []) -> PreferencePair {
        if rng.below(3) < 2 {
            let rejected = wrongAnswer(answer: answer, distractors: distractors)
            return PreferencePair(prompt: prompt, chosen: answer, rejected: rejected,
                                  source: "constructed: reference answer over a plausible wrong answer")
        }
        var rejected = ""
        while rejected.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty || rejected == answer {
            rejected = offFormatResponse(prompt: prompt, answer: answer)
        }
        return PreferencePair(prompt: prompt, chosen: answer, rejected: rejected,
                              source: "constructed: reference answer over an off-format response")
    }

    /// One constructed response per grade, indexed by `ResponseGrade.rawValue`.
    public mutating func constructedResponses(prompt: String, answer: String, distractors: [String] = []) -> [GradedResponse] {
        var offFormat = offFormatResponse(prompt: prompt, answer: answer)
        if offFormat == answer { offFormat = "" }
        return [
            GradedResponse(text: answer, grade: .correctAndClean),
            GradedResponse(text: rambling(answer: answer, chinese: Self.isChinese(prompt)), grade: .correctButRambling),
            GradedResponse(text: wrongAnswer(answer: answer, distractors: distractors), grade: .wrong),
            GradedResponse(text: offFormat, grade: .offFormat),
        ]
    }

    // MARK: - Constructed responses

    mutating func rambling(answer: String, chinese: Bool) -> String {
        let english = [
            "\(answer). I hope this helps! Let me know if you have any other questions.",
            "The answer is \(answer). This is a question many people find interesting, and there is a lot more one could say about it.",
            "\(answer), as far as I can tell after thinking about it for a while.",
            "Sure! Here is the answer you asked for: \(answer). Feel free to ask me anything else.",
        ]
        let chineseFillers = [
            "\(answer)。希望这个回答对你有帮助！",
            "答案是 \(answer)。如果还有其他问题，欢迎继续提问。",
        ]
        return rng.pick(chinese ? chineseFillers : english)
    }

    mutating func wrongAnswer(answer: String, distractors: [String]) -> String {
        let usable = distractors.filter { !InstructionTasks.verify(response: $0, answer: answer) }
        if !usable.isEmpty { return rng.pick(usable) }
        let trimmed = answer.trimmingCharacters(in: .whitespacesAndNewlines)
        if let number = Int(trimmed) {
            return "\(number + (rng.below(2) == 0 ? 1 : -1))"
        }
        let swapped = InstructionTasks.swapAdjacent(trimmed, &rng)
        return InstructionTasks.verify(response: swapped, answer: answer) ? trimmed + "?" : swapped
    }

    mutating func offFormatResponse(prompt: String, answer: String) -> String {
        let chinese = Self.isChinese(prompt)
        switch rng.below(4) {
        case 0:
            return ""
        case 1:
            // One word of the prompt over and over, as an untrained model does.
            let words = prompt.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
            let token = words.isEmpty ? "the" : rng.pick(words)
            return Array(repeating: token, count: 6 + rng.below(6)).joined(separator: " ")
        case 2:
            return rng.pick(chinese ? TaskVocabulary.unrelatedChinese : TaskVocabulary.unrelatedEnglish)
        default:
            // The prompt echoed, unless it states the answer (as "Repeat the word X." does).
            if prompt.contains(answer) { return rng.pick(chinese ? TaskVocabulary.unrelatedChinese : TaskVocabulary.unrelatedEnglish) }
            return prompt
        }
    }

    static func isChinese(_ text: String) -> Bool {
        text.unicodeScalars.contains { (0x4E00...0x9FFF).contains($0.value) }
    }
}
