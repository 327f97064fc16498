import Foundation
import LoomTokenizer

/// One supervised fine-tuning conversation. The loss is taken on the assistant turns.
public struct SFTExample: Equatable, Sendable {
    public var messages: [ChatMessage]
    /// Where the example came from (`"source"` in the file), e.g. `"constructed: …"`.
    public var source: String?

    public init(messages: [ChatMessage], source: String? = nil) {
        self.messages = messages
        self.source = source
    }

    /// An Alpaca record as a conversation: the user turn is the instruction, followed by a blank
    /// line and the input when there is one; the assistant turn is the output.
    public init(instruction: String, input: String? = nil, output: String, source: String? = nil) {
        var user = instruction
        if let input, !input.isEmpty { user += "\n\n" + input }
        self.init(messages: [ChatMessage(role: "user", content: user), ChatMessage(role: "assistant", content: output)], source: source)
    }

    public static let roles: Set<String> = ["system", "user", "assistant"]
}

/// SFT data in JSON Lines, in either of two formats (they may be mixed in one file):
///
///     {"messages": [{"role": "user", "content": "What is 2 + 3?"}, {"role": "assistant", "content": "5"}]}
///     {"instruction": "Reverse the word.", "input": "cat", "output": "tac"}
///
/// Roles must be `system`, `user` or `assistant`, every `content` a string, and a conversation
/// needs at least one assistant turn. Other fields (such as `source`) are kept or ignored.
///
///     let (examples, skipped) = try SFTDataset.load(URL(fileURLWithPath: "sft.jsonl"), skipBadLines: true)
public enum SFTDataset {
    public static func load(
        _ url: URL,
        skipBadLines: Bool = false,
        onSkip: ((DataError) -> Void)? = nil
    ) throws -> (examples: [SFTExample], skipped: Int) {
        let result = try AlignmentJSONL.load(url, skipBadLines: skipBadLines, onSkip: onSkip, parse: parse)
        return (result.items, result.skipped)
    }

    /// One line, in chat or Alpaca format.
    public static func parse(_ line: JSONLine) throws -> SFTExample {
        let source = try line.optionalString("source")
        if line.has("messages") {
            let array = try line.array("messages")
            guard !array.isEmpty else { throw line.error("\"messages\" is empty") }
            var messages: [ChatMessage] = []
            for (index, element) in array.enumerated() {
                let field = "messages[\(index)]"
                guard let object = element as? [String: Any] else {
                    throw line.error("\"\(field)\" must be an object with \"role\" and \"content\", found \(JSONLReader.describeJSONType(element))")
                }
                let role = try JSONLine.string(object["role"], field: field + ".role", in: line)
                guard SFTExample.roles.contains(role) else {
                    throw line.error("\"\(field).role\" must be \"system\", \"user\" or \"assistant\", found \"\(role)\"")
                }
                let content = try JSONLine.string(object["content"], field: field + ".content", in: line)
                messages.append(ChatMessage(role: role, content: content))
            }
            guard messages.contains(where: { $0.role == "assistant" }) else {
                throw line.error("\"messages\" has no assistant turn (nothing to learn from)")
            }
            return SFTExample(messages: messages, source: source)
        }
        if line.has("instruction") || line.has("output") {
            let instruction = try line.string("instruction")
            guard !instruction.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                throw line.error("\"instruction\" is empty")
            }
            let input = try line.optionalString("input")
            let output = try line.string("output")
            return SFTExample(instruction: instruction, input: input, output: output, source: source)
        }
        throw line.error("expected \"messages\" (chat format) or \"instruction\" and \"output\" (Alpaca format)")
    }

    /// One JSON object in chat format (with `source` when there is one).
    public static func jsonLine(_ example: SFTExample) -> String {
        var object = JSONObjectWriter()
        object.add("messages", messages: example.messages)
        object.add("source", example.source)
        return object.finish()
    }

    /// Writes the examples in chat format, atomically.
    public static func write(_ examples: [SFTExample], to url: URL) throws {
        try AlignmentJSONL.write(lines: examples.map(jsonLine), to: url)
    }
}
