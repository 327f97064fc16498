import Foundation

/// A prompt for reinforcement learning or evaluation; `answer`, when present, makes the reward
/// verifiable (`InstructionTasks.verify`) and allows exact-match accuracy.
public struct PromptExample: Equatable, Sendable {
    public var prompt: String
    public var answer: String?
    public var source: String?
    /// Candidate answers for multiple-choice scoring (the right one among them), optional.
    public var choices: [String]?

    public init(prompt: String, answer: String? = nil, source: String? = nil, choices: [String]? = nil) {
        self.prompt = prompt
        self.answer = answer
        self.source = source
        self.choices = choices
    }
}

/// Prompts in JSON Lines: `{"prompt": "What is 2 + 3?", "answer": "5"}` (`answer` optional;
/// `"choices": ["5", "6", "4"]`, optional, lists candidate answers for multiple-choice scoring
/// and must hold the answer).
///
///     let (prompts, _) = try PromptDataset.load(URL(fileURLWithPath: "prompts_heldout.jsonl"))
public enum PromptDataset {
    public static func load(
        _ url: URL,
        skipBadLines: Bool = false,
        onSkip: ((DataError) -> Void)? = nil
    ) throws -> (examples: [PromptExample], skipped: Int) {
        let result = try AlignmentJSONL.load(url, skipBadLines: skipBadLines, onSkip: onSkip, parse: parse)
        return (result.items, result.skipped)
    }

    public static func parse(_ line: JSONLine) throws -> PromptExample {
        let prompt = try line.string("prompt")
        guard !prompt.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw line.error("\"prompt\" is empty")
        }
        let answer = try line.optionalString("answer")
        var choices: [String]? = nil
        if line.has("choices") {
            let values = try line.array("choices")
            choices = try values.enumerated().map { try JSONLine.string($1, field: "choices[\($0)]", in: line) }
            guard let answer, choices!.contains(answer) else { throw line.error("\"choices\" must hold the \"answer\"") }
            guard Set(choices!).count == choices!.count, choices!.count >= 2 else { throw line.error("\"choices\" needs at least 2 different candidates") }
        }
        return PromptExample(prompt: prompt, answer: answer, source: try line.optionalString("source"), choices: choices)
    }

    public static func jsonLine(_ example: PromptExample) -> String {
        var object = JSONObjectWriter()
        object.add("prompt", example.prompt)
        object.add("answer", example.answer)
        object.add("source", example.source)
        if let choices = example.choices { object.add("choices", strings: choices) }
        return object.finish()
    }

    /// Writes the prompts atomically, one JSON object per line.
    public static func write(_ examples: [PromptExample], to url: URL) throws {
        try AlignmentJSONL.write(lines: examples.map(jsonLine), to: url)
    }
}
