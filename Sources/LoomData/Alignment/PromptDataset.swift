import Foundation

/// A prompt for reinforcement learning or evaluation; `answer`, when present, makes the reward
/// verifiable (`InstructionTasks.verify`) and allows exact-match accuracy.
public struct PromptExample: Equatable, Sendable {
    public var prompt: String
    public var answer: String?
    public var source: String?

    public init(prompt: String, answer: String? = nil, source: String? = nil) {
        self.prompt = prompt
        self.answer = answer
        self.source = source
    }
}

/// Prompts in JSON Lines: `{"prompt": "What is 2 + 3?", "answer": "5"}` (`answer` optional).
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
        return PromptExample(prompt: prompt, answer: try line.optionalString("answer"), source: try line.optionalString("source"))
    }

    public static func jsonLine(_ example: PromptExample) -> String {
        var object = JSONObjectWriter()
        object.add("prompt", example.prompt)
        object.add("answer", example.answer)
        object.add("source", example.source)
        return object.finish()
    }

    /// Writes the prompts atomically, one JSON object per line.
    public static func write(_ examples: [PromptExample], to url: URL) throws {
        try AlignmentJSONL.write(lines: examples.map(jsonLine), to: url)
    }
}
