import XCTest
import Foundation
import LoomData
import LoomInference
import LoomTokenizer
@testable import LoomTrain

/// `ChatSession` and `loom chat`: the history is trimmed to the context oldest-first with the
/// system prompt kept, an answer is what the generator gives for the rendered conversation,
/// and the command works with piped input (turns, /reset, /exit).
final class ChatTests: XCTestCase {
    /// The alignment test model with a 256-token context (RoPE has no learned positions, so the
    /// same weights work at any length).
    static let fixture: URL = {
        let small = ProcessFixtures.removedAtExit(try! AlignmentTestModel.make(seed: 11, standardDeviation: 0.3))
        var configuration = try! LlamaModel.load(directory: small).configuration
        configuration.maxPositionEmbeddings = 256
        let model = LlamaModel(configuration: configuration)
        model.parameters.copyValues(from: try! LlamaModel.load(directory: small).parameters)
        try! model.save(directory: small)
        return small
    }()

    func session(system: String? = nil) throws -> ChatSession {
        Threading.configure(threads: 1)
        let model = try LlamaModel.load(directory: Self.fixture)
        let tokenizer = try ByteLevelBPETokenizer(contentsOf: Self.fixture.appendingPathComponent("tokenizer.json"))
        return ChatSession(model: model, tokenizer: tokenizer, system: system)
    }

    func testAnswerIsTheGeneratorsAnswerToTheRenderedConversation() throws {
        let chat = try session(system: "be brief")
        let first = try chat.reply(to: "what is 1 plus one?", maxTokens: 6, sampling: .greedy)
        var streamed = ""
        let second = try chat.reply(to: "and 2 plus one?", maxTokens: 6, sampling: .greedy) { streamed += $0; return true }
        XCTAssertEqual(streamed, second.text)
        XCTAssertEqual(chat.turns.map(\.role), ["user", "assistant", "user", "assistant"])
        XCTAssertEqual(chat.turns[1].content, first.text)
        // The second answer is the generator's greedy continuation of the whole conversation.
        let messages = [ChatMessage(role: "system", content: "be brief"), ChatMessage(role: "user", content: "what is 1 plus one?"),
                        ChatMessage(role: "assistant", content: first.text), ChatMessage(role: "user", content: "and 2 plus one?")]
        let ids = chat.tokenizer.chatTemplate.encodePrompt(messages, tokenizer: chat.tokenizer).map(Int32.init)
        let end = Int32(chat.tokenizer.tokenID("<|im_end|>")!)
        let direct = Generator(model: chat.model, stopTokens: [end, Int32(chat.tokenizer.endOfTextID)]).generate(prompt: ids, maxTokens: 6, sampling: .greedy)
        XCTAssertEqual(second.droppedExchanges, 0)
        XCTAssertEqual(second.promptTokens, ids.count)
        XCTAssertEqual(second.text, chat.tokenizer.decode(direct.tokens.map(Int.init)))
        chat.reset()
        XCTAssertTrue(chat.turns.isEmpty)
        XCTAssertEqual(chat.system, "be brief")
    }

    func testHistoryIsTrimmedOldestFirstKeepingTheSystemPrompt() throws {
        let chat = try session(system: "sys")
        let window = chat.model.configuration.maxPositionEmbeddings
        for i in 0..<8 { try chat.reply(to: "question \(i) is red or blue, left or right?", maxTokens: 6, sampling: .greedy) }
        let reserve = 120
        let (ids, dropped) = try chat.prompt(for: "last question", reserve: reserve)
        // The fewest oldest exchanges dropped that make the prompt and the answer fit.
        func rendered(dropping d: Int) -> [Int32] {
            let kept = Array(chat.turns.dropFirst(2 * d))
            let messages = [ChatMessage(role: "system", content: "sys")] + kept + [ChatMessage(role: "user", content: "last question")]
            return chat.tokenizer.chatTemplate.encodePrompt(messages, tokenizer: chat.tokenizer).map(Int32.init)
        }
        XCTAssertGreaterThan(dropped, 0)
        XCTAssertLessThan(dropped, 8)
        XCTAssertEqual(ids, rendered(dropping: dropped))
        XCTAssertLessThanOrEqual(ids.count + reserve, window)
        XCTAssertGreaterThan(rendered(dropping: dropped - 1).count + reserve, window)
        let text = chat.tokenizer.decode(ids.map(Int.init))
        XCTAssertTrue(text.hasPrefix("<|im_start|>system\nsys<|im_end|>"), text)
        XCTAssertTrue(text.contains("question 7 is"), "the newest exchange stays")
        // A message that cannot fit with its answer is an error naming the sizes, not a silent cut.
        XCTAssertThrowsError(try chat.prompt(for: String(repeating: "red blue ", count: 200), reserve: 8)) { error in
            XCTAssertTrue("\(error)".contains("context of \(window)"), "\(error)")
        }
    }

    func testCommandWithPipedInput() throws {
        func chat(_ input: String) throws -> (status: Int32, stdout: String, stderr: String) {
            let process = Process()
            process.executableURL = CheckpointFaultTests.loom
            process.arguments = ["chat", "--model", Self.fixture.path, "--temperature", "0", "--max-tokens", "5", "--threads", "1"]
            let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
            process.standardInput = stdin; process.standardOutput = stdout; process.standardError = stderr
            try process.run()
            try stdin.fileHandleForWriting.write(contentsOf: Data(input.utf8))
            try stdin.fileHandleForWriting.close()
            let out = stdout.fileHandleForReading.readDataToEndOfFile(), err = stderr.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
        }
        let run = try chat("what is 1 plus one?\n/reset\nwhat is 2 plus one?\n/exit\nnot read\n")
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stderr.contains("[conversation reset]"), run.stderr)
        XCTAssertTrue(run.stderr.contains("tok/s"), run.stderr)
        // The first answer, then — after /reset — the second question answered as in a new
        // conversation; the line after /exit is not read.
        let first = try session().reply(to: "what is 1 plus one?", maxTokens: 5, sampling: .greedy)
        let second = try session().reply(to: "what is 2 plus one?", maxTokens: 5, sampling: .greedy)
        XCTAssertEqual(run.stdout, first.text + "\n" + second.text + "\n")
    }
}
