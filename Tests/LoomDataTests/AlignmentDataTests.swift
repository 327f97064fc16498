import Foundation
import LoomTokenizer
import XCTest
@testable import LoomData

final class AlignmentDataTests: XCTestCase {
    // MARK: - Helpers

    private func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("loom-alignment-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    private func file(_ name: String, _ lines: [String]) throws -> URL {
        let url = try temporaryDirectory().appendingPathComponent(name)
        try Data(lines.joined(separator: "\n").utf8).write(to: url)
        return url
    }

    /// Asserts that `body` throws a DataError whose message contains every fragment.
    private func assertError(_ fragments: [String], file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
        do {
            try body()
            XCTFail("expected an error containing \(fragments)", file: file, line: line)
        } catch {
            let message = "\(error)"
            XCTAssertTrue(error is DataError, "not a DataError: \(error)", file: file, line: line)
            for fragment in fragments {
                XCTAssertTrue(message.contains(fragment), "\"\(message)\" lacks \"\(fragment)\"", file: file, line: line)
            }
        }
    }

    // MARK: - SFT

    func testSFTLoadsChatAndAlpacaFormats() throws {
        let url = try file("sft.jsonl", [
            #"{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}], "source": "test"}"#,
            "",
            #"{"instruction": "Reverse the word.", "input": "cat", "output": "tac"}"#,
            #"{"instruction": "Say hi.", "output": "hi"}"#,
            #"{"instruction": "Say hi.", "input": "", "output": "hi"}"#,
            #"{"instruction": "Say hi.", "input": null, "output": "hi"}"#,
        ])
        let (examples, skipped) = try SFTDataset.load(url)
        XCTAssertEqual(skipped, 0)
        XCTAssertEqual(examples.count, 5)
        XCTAssertEqual(examples[0].messages.map(\.role), ["system", "user", "assistant"])
        XCTAssertEqual(examples[0].source, "test")
        XCTAssertEqual(examples[1].messages, [
            ChatMessage(role: "user", content: "Reverse the word.\n\ncat"),
            ChatMessage(role: "assistant", content: "tac"),
        ])
        for example in examples[2...] {
            XCTAssertEqual(example.messages, [ChatMessage(role: "user", content: "Say hi."), ChatMessage(role: "assistant", content: "hi")])
        }
    }

    func testSFTMalformedLinesNameFileLineAndField() throws {
        let good = #"{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}"#
        let cases: [(String, [String])] = [
            (#"{"messages": [{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}]}"#, ["messages[1].role", "bot"]),
            (#"{"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "b"}]}"#, ["messages[0].content", "must be a string"]),
            (#"{"messages": [{"role": "user", "content": "a"}]}"#, ["no assistant turn"]),
            (#"{"messages": []}"#, ["\"messages\" is empty"]),
            (#"{"messages": "hello"}"#, ["\"messages\" must be an array"]),
            (#"{"messages": [{"role": "user"}, {"role": "assistant", "content": "b"}]}"#, ["messages[0].content"]),
            (#"{"instruction": "x"}"#, ["\"output\""]),
            (#"{"output": "x"}"#, ["\"instruction\""]),
            (#"{"text": "x"}"#, ["\"messages\"", "\"instruction\""]),
            (#"{"messages": [{"role": "user", "content": "a"}"#, ["invalid JSON"]),
            (#"[1, 2]"#, ["expected a JSON object"]),
        ]
        for (bad, fragments) in cases {
            let url = try file("bad.jsonl", [good, good, bad, good])
            assertError([url.path, ":3:"] + fragments) { _ = try SFTDataset.load(url) }
        }
    }

    func testSkipBadLinesCountsAndReportsThem() throws {
        let url = try file("mixed.jsonl", [
            #"{"instruction": "a", "output": "b"}"#,
            #"not json"#,
            #"{"instruction": "a", "output": "b"}"#,
            #"{"messages": [{"role": "user", "content": "a"}]}"#,
            #"{"instruction": "a", "output": "b"}"#,
        ])
        var reported: [String] = []
        let (examples, skipped) = try SFTDataset.load(url, skipBadLines: true) { reported.append($0.description) }
        XCTAssertEqual(examples.count, 3)
        XCTAssertEqual(skipped, 2)
        XCTAssertEqual(reported.count, 2)
        XCTAssertTrue(reported[0].contains(":2:"), reported[0])
        XCTAssertTrue(reported[1].contains(":4:"), reported[1])
        // Without the option the first bad line stops the load.
        assertError([":2:"]) { _ = try SFTDataset.load(url) }
        // A missing file is an error either way.
        assertError(["no such file"]) { _ = try SFTDataset.load(url.appendingPathExtension("missing"), skipBadLines: true) }
    }

    // MARK: - Preferences

    func testPreferenceLoaderReadsPairsAndRankings() throws {
        let url = try file("prefs.jsonl", [
            #"{"prompt": "2+3?", "chosen": "5", "rejected": "6"}"#,
            #"{"prompt": "2+2?", "responses": ["5", "4", "", "four, I think"], "ranking": [1, 3, 0, 2], "source": "constructed: test"}"#,
        ])
        let (records, skipped) = try PreferenceDataset.load(url)
        XCTAssertEqual(skipped, 0)
        XCTAssertEqual(records.count, 2)
        XCTAssertEqual(records[0], .pair(PreferencePair(prompt: "2+3?", chosen: "5", rejected: "6")))
        guard case .ranking(let ranked) = records[1] else { return XCTFail("expected a ranking") }
        XCTAssertEqual(ranked.ordered, ["4", "four, I think", "5", ""])
        XCTAssertEqual(ranked.source, "constructed: test")
        let pairs = ranked.pairs
        XCTAssertEqual(pairs.count, 6)  // C(4, 2)
        XCTAssertEqual(pairs.map(\.chosen), ["4", "4", "4", "four, I think", "four, I think", "5"])
        XCTAssertEqual(pairs.map(\.rejected), ["four, I think", "5", "", "5", "", ""])
        XCTAssertEqual(PreferenceDataset.pairs(records).count, 7)
        let separated = PreferenceDataset.separate(records)
        XCTAssertEqual(separated.pairs.count, 1)
        XCTAssertEqual(separated.rankings.count, 1)
        for k in 2...9 {
            let responses = (0..<k).map { "r\($0)" }
            XCTAssertEqual(try RankedResponses(prompt: "p", responses: responses, ranking: Array((0..<k).reversed())).pairs.count, k * (k - 1) / 2)
        }
    }

    func testRankingValidation() throws {
        let cases: [(String, [String])] = [
            (#"{"prompt": "p", "responses": ["a", "b", "c"], "ranking": [0, 0, 1]}"#, ["not a permutation", "0 appears twice"]),
            (#"{"prompt": "p", "responses": ["a", "b", "c"], "ranking": [0, 1, 3]}"#, ["3", "outside 0..<3"]),
            (#"{"prompt": "p", "responses": ["a", "b", "c"], "ranking": [0, 1]}"#, ["2 entries for 3 responses"]),
            (#"{"prompt": "p", "responses": ["a"], "ranking": [0]}"#, ["1 entries", "2 to 9"]),
            (#"{"prompt": "p", "responses": ["a","b","c","d","e","f","g","h","i","j"], "ranking": [0,1,2,3,4,5,6,7,8,9]}"#, ["10 entries"]),
            (#"{"prompt": "p", "responses": ["a", "b"], "ranking": ["0", 1]}"#, ["ranking[0]", "must be an integer"]),
            (#"{"prompt": "p", "responses": ["a", "b"], "ranking": [0.5, 1]}"#, ["ranking[0]", "must be an integer"]),
            (#"{"prompt": "p", "responses": ["a", "b"], "ranking": [true, 0]}"#, ["ranking[0]", "must be an integer, found a boolean"]),
            (#"{"prompt": "p", "responses": ["a", 2], "ranking": [0, 1]}"#, ["responses[1]", "must be a string"]),
            (#"{"prompt": "p", "responses": ["a", "b"]}"#, ["missing \"ranking\""]),
            (#"{"prompt": "p", "chosen": "a"}"#, ["missing \"rejected\""]),
            (#"{"prompt": "p", "chosen": "a", "rejected": "a"}"#, ["same text"]),
            (#"{"chosen": "a", "rejected": "b"}"#, ["missing \"prompt\""]),
            (#"{"prompt": "p"}"#, ["expected \"chosen\""]),
        ]
        for (bad, fragments) in cases {
            let url = try file("rank.jsonl", [#"{"prompt": "p", "chosen": "a", "rejected": "b"}"#, bad])
            assertError([url.path, ":2:"] + fragments) { _ = try PreferenceDataset.load(url) }
            let (records, skipped) = try PreferenceDataset.load(url, skipBadLines: true)
            XCTAssertEqual(records.count, 1)
            XCTAssertEqual(skipped, 1)
        }
        // A ranking given as 1.0 is still an integer.
        let url = try file("float.jsonl", [#"{"prompt": "p", "responses": ["a", "b"], "ranking": [1.0, 0]}"#])
        XCTAssertEqual(try PreferenceDataset.load(url).records.first?.pairs.first?.chosen, "b")
        XCTAssertThrowsError(try RankedResponses(prompt: "p", responses: ["a", "b", "c"], ranking: [2, 2, 0]))
    }

    // MARK: - Prompts and writers

    func testPromptDatasetAndWritersRoundTrip() throws {
        let directory = try temporaryDirectory()
        let tricky = "quote \" backslash \\ newline \n tab \t control \u{01} 中文 emoji 🙂 slash /"
        let prompts = [
            PromptExample(prompt: "What is 2 + 3?", answer: "5", source: "constructed: test"),
            PromptExample(prompt: tricky),
        ]
        try PromptDataset.write(prompts, to: directory.appendingPathComponent("prompts.jsonl"))
        XCTAssertEqual(try PromptDataset.load(directory.appendingPathComponent("prompts.jsonl")).examples, prompts)

        let sft = [SFTExample(messages: [ChatMessage(role: "user", content: tricky), ChatMessage(role: "assistant", content: "ok")], source: "s")]
        try SFTDataset.write(sft, to: directory.appendingPathComponent("sft.jsonl"))
        XCTAssertEqual(try SFTDataset.load(directory.appendingPathComponent("sft.jsonl")).examples, sft)

        let ranked = try RankedResponses(prompt: tricky, responses: ["a", tricky, ""], ranking: [1, 0, 2], source: "constructed: x")
        let records: [PreferenceRecord] = [.ranking(ranked), .pair(PreferencePair(prompt: "p", chosen: "a", rejected: tricky))]
        try PreferenceDataset.write(records, to: directory.appendingPathComponent("prefs.jsonl"))
        XCTAssertEqual(try PreferenceDataset.load(directory.appendingPathComponent("prefs.jsonl")).records, records)

        // One object per line, key order readable, no temporary files left behind.
        let text = try String(contentsOf: directory.appendingPathComponent("prefs.jsonl"), encoding: .utf8)
        XCTAssertEqual(text.split(separator: "\n").count, 2)
        XCTAssertTrue(text.hasPrefix(#"{"prompt":"#))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted(), ["prefs.jsonl", "prompts.jsonl", "sft.jsonl"])

        let bad = try file("prompts.jsonl", [#"{"prompt": "ok"}"#, #"{"prompt": "ok", "answer": 5}"#, #"{"prompt": "  "}"#])
        assertError([":2:", "\"answer\" must be a string"]) { _ = try PromptDataset.load(bad) }
        XCTAssertEqual(try PromptDataset.load(bad, skipBadLines: true).skipped, 2)
    }

    // MARK: - Instruction tasks

    func testTrainDevAndTestProblemsAreDisjoint() {
        for kind in InstructionTaskKind.allCases {
            var trainKeys = Set<String>(), trainPrompts = Set<String>()
            for seed: UInt64 in [1, 2] {
                for task in InstructionTasks.generate(kind: kind, count: 1500, seed: seed, split: .train) {
                    XCTAssertEqual(task.split, .train)
                    XCTAssertEqual(InstructionTasks.split(ofProblem: task.splitKey), .train)
                    trainKeys.insert(task.splitKey)
                    trainPrompts.insert(task.prompt)
                }
            }
            var devKeys = Set<String>()
            for split in [TaskSplit.dev, .test] {
                let tasks = InstructionTasks.generate(kind: kind, count: 400, seed: 3, split: split)
                XCTAssertEqual(tasks.count, 400)
                for task in tasks {
                    XCTAssertEqual(InstructionTasks.split(ofProblem: task.splitKey), split)
                    XCTAssertFalse(trainKeys.contains(task.splitKey), "\(kind): \(split) problem \(task.problem) generated for training")
                    XCTAssertFalse(trainPrompts.contains(task.prompt), "\(kind): \(split) prompt \(task.prompt) generated for training")
                    if split == .dev { devKeys.insert(task.splitKey) } else { XCTAssertFalse(devKeys.contains(task.splitKey)) }
                }
                // Problems do not repeat while the space allows.
                XCTAssertGreaterThan(Set(tasks.map(\.problem)).count, 40, "\(kind) \(split)")
            }
        }
    }

    /// A problem's twins — the same question up to the symmetries of its kind — share its split
    /// key, so they can never land on two sides (compareNumbers used to split "max:31:83" and
    /// "max:83:31" independently).
    func testTwinsShareTheirSplit() {
        var rng = TaskRandom(seed: 5, stream: "twins")
        for _ in 0..<2000 {
            let compare = InstructionTasks.compareNumbers(&rng)
            let numbers = compare.canonical.split(separator: ":").dropFirst().compactMap { Int($0) }
            XCTAssertEqual(compare.splitKey, "compare:\(numbers.min()!):\(numbers.max()!)", compare.canonical)
            let arithmetic = InstructionTasks.arithmetic(&rng)
            if arithmetic.canonical.hasPrefix("add:") {
                let operands = arithmetic.canonical.split(separator: ":").dropFirst().compactMap { Int($0) }
                XCTAssertEqual(arithmetic.splitKey, "add:\(operands.min()!):\(operands.max()!)")
            }
            let sort = InstructionTasks.sortLetters(&rng)
            XCTAssertEqual(sort.splitKey, "sort:\(sort.answer)")   // anagrams: one key
            let reverse = InstructionTasks.reverseWord(&rng)
            let word = String(reverse.canonical.dropFirst("reverse:".count))
            XCTAssertEqual(reverse.splitKey, "reverse:\(min(word, reverse.answer))")
            let parity = InstructionTasks.parity(&rng), lastDigit = InstructionTasks.lastDigit(&rng)
            XCTAssertEqual(parity.splitKey, "number:" + parity.canonical.dropFirst("parity:".count))
            XCTAssertEqual(lastDigit.splitKey, "number:" + lastDigit.canonical.dropFirst("lastdigit:".count))
        }
        // The leak the old canonical form allowed, checked on the files: no test comparison has
        // its pair of numbers in any training file, operands swapped or not, worksheets included.
        let kinds: [InstructionTaskKind] = [.compareNumbers]
        let contents = InstructionTaskFiles.make(train: 2000, dev: 200, test: 200, seed: 2026, kinds: kinds)
        func pair(_ prompt: String) -> [Int] {
            prompt.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }.sorted()
        }
        let worksheets = InstructionTasks.generate(kinds: kinds, count: 20_000, seed: 2125, split: .train)
        let trainingPairs = Set(contents.promptsTrain.map { pair($0.prompt) } + contents.sftTrain.map { pair($0.messages[0].content) }
                                + contents.rankingsTrain.map { pair($0.prompt) } + contents.preferencesTrain.map { pair($0.prompt) }
                                + worksheets.map { pair($0.prompt) })
        for example in contents.promptsTest + contents.promptsDev {
            XCTAssertFalse(trainingPairs.contains(pair(example.prompt)), "the numbers of \(example.prompt) are in a training file")
        }
    }

    func testSplitSharesAreAboutOneInFiveForDevAndTest() {
        let problems = (0..<100).flatMap { a in (0..<100).map { b in "add:\(a):\(b)" } }
        for split in [TaskSplit.dev, .test] {
            let share = Double(problems.filter { InstructionTasks.split(ofProblem: $0) == split }.count) / Double(problems.count)
            XCTAssertEqual(share, 0.2, accuracy: 0.02, "\(split)")
        }
    }

    func testGeneratorIsDeterministic() throws {
        XCTAssertEqual(InstructionTasks.generate(count: 300, seed: 42, split: .train), InstructionTasks.generate(count: 300, seed: 42, split: .train))
        XCTAssertNotEqual(InstructionTasks.generate(count: 300, seed: 42, split: .train), InstructionTasks.generate(count: 300, seed: 43, split: .train))
        let a = try temporaryDirectory(), b = try temporaryDirectory()
        let summary = try InstructionTaskFiles.write(to: a, train: 120, dev: 20, test: 30, seed: 9)
        try InstructionTaskFiles.write(to: b, train: 120, dev: 20, test: 30, seed: 9)
        XCTAssertEqual(summary.lines.map(\.count), [120, 120, 20, 30, 120, 20, 30, 120])
        for (name, _) in summary.lines {
            XCTAssertEqual(try Data(contentsOf: a.appendingPathComponent(name)), try Data(contentsOf: b.appendingPathComponent(name)), name)
        }
    }

    func testFewerDemonstrationsAreASubsetAndLeaveTheOtherFilesAlone() throws {
        let kinds: [InstructionTaskKind] = [.parity, .compareNumbers, .lastDigit]
        let all = InstructionTaskFiles.make(train: 90, dev: 9, test: 12, seed: 3, kinds: kinds)
        let few = InstructionTaskFiles.make(train: 90, dev: 9, test: 12, seed: 3, kinds: kinds, demonstrations: 30)
        XCTAssertEqual(few.sftTrain.count, 30)
        // Each kind's first ten demonstrations of the full set: fewer is a subset of more.
        let fullPrompts = Set(all.sftTrain.map { $0.messages[0].content })
        XCTAssertTrue(few.sftTrain.allSatisfy { fullPrompts.contains($0.messages[0].content) })
        for kind in kinds {
            XCTAssertEqual(few.sftTrain.filter { InstructionTask.kind(ofSource: $0.source) == kind }.count, 10, kind.rawValue)
        }
        // The RL prompts, rankings and preference pairs do not depend on the demonstrations.
        XCTAssertEqual(few.promptsTrain, all.promptsTrain)
        XCTAssertEqual(few.promptsTest, all.promptsTest)
        XCTAssertEqual(few.promptsDev, all.promptsDev)
        XCTAssertEqual(few.rankingsTrain.map(\.prompt), all.rankingsTrain.map(\.prompt))
        XCTAssertEqual(few.preferencesTrain.map(\.prompt), all.preferencesTrain.map(\.prompt))
        let directory = try temporaryDirectory()
        let summary = try InstructionTaskFiles.write(to: directory, train: 90, dev: 9, test: 12, seed: 3, kinds: kinds, demonstrations: 30)
        XCTAssertEqual(summary.lines.map(\.count), [30, 90, 9, 12, 90, 9, 12, 90])
    }

    func testGeneratedAnswersAreRight() {
        for task in InstructionTasks.generate(count: 3500, seed: 5, split: .train) {
            let parts = task.problem.split(separator: ":").map(String.init)
            let expected: String
            switch task.kind {
            case .arithmetic:
                let a = Int(parts[1])!, b = Int(parts[2])!
                expected = "\(parts[0] == "add" ? a + b : a - b)"
                XCTAssertTrue(task.prompt.contains("\(a)") && task.prompt.contains("\(b)"), task.prompt)
            case .reverseWord:
                expected = String(parts[1].reversed())
            case .sortLetters:
                expected = String(parts[1].sorted())
            case .countLetters:
                expected = parts[0] == "length" ? "\(parts[1].count)" : "\(parts[2].filter { String($0) == parts[1] }.count)"
            case .uppercase:
                expected = parts[1].uppercased()
            case .nextInSequence:
                let start = Int(parts[1])!, step = Int(parts[2])!, shown = Int(parts[3])!
                expected = "\(start + shown * step)"
            case .recordField:
                let fields = Dictionary(uniqueKeysWithValues: String(task.problem.dropFirst("record:".count)).split(separator: ";").map {
                    let pair = $0.split(separator: "=", maxSplits: 1)
                    return (String(pair[0]), String(pair[1]))
                })
                expected = fields[fields["ask"]!]!
            case .compareNumbers:
                let a = Int(parts[1])!, b = Int(parts[2])!
                XCTAssertNotEqual(a, b)
                expected = "\(parts[0] == "max" ? max(a, b) : min(a, b))"
            case .parity:
                expected = Int(parts[1])! % 2 == 0 ? "even" : "odd"
            case .lastDigit:
                expected = "\(Int(parts[1])! % 10)"
            case .repeatWord:
                expected = parts[1]
                XCTAssertTrue(task.prompt.contains(parts[1]), task.prompt)
            }
            XCTAssertEqual(task.answer, expected, task.problem)
            XCTAssertTrue(task.answer.count <= 8 && !task.answer.isEmpty, task.answer)
            XCTAssertTrue(InstructionTasks.verify(response: task.answer, answer: task.answer))
            XCTAssertFalse(task.distractors.isEmpty, task.problem)
            for wrong in task.distractors {
                XCTAssertFalse(InstructionTasks.verify(response: wrong, answer: task.answer), "\(task.problem): distractor \(wrong) verifies")
            }
            XCTAssertEqual(task.sftExample.messages.last, ChatMessage(role: "assistant", content: task.answer))
            XCTAssertEqual(task.promptExample.answer, task.answer)
        }
        // Several phrasings per kind, some in Chinese.
        let tasks = InstructionTasks.generate(kind: .arithmetic, count: 600, seed: 1, split: .train)
        XCTAssertGreaterThan(Set(tasks.map { $0.prompt.replacingOccurrences(of: "[0-9]+", with: "N", options: .regularExpression) }).count, 5)
        XCTAssertTrue(tasks.contains { $0.language == "zh" })
        XCTAssertTrue(tasks.contains { $0.language == "en" })
    }

    func testVerifier() {
        XCTAssertTrue(InstructionTasks.verify(response: "71", answer: "71"))
        XCTAssertTrue(InstructionTasks.verify(response: "  71.\n", answer: "71"))
        XCTAssertTrue(InstructionTasks.verify(response: "Paris。", answer: "Paris"))
        XCTAssertTrue(InstructionTasks.verify(response: "esroh .", answer: "esroh"))
        XCTAssertFalse(InstructionTasks.verify(response: "71..", answer: "71"))
        XCTAssertFalse(InstructionTasks.verify(response: "The answer is 71.", answer: "71"))
        XCTAssertFalse(InstructionTasks.verify(response: "710", answer: "71"))
        XCTAssertFalse(InstructionTasks.verify(response: "paris", answer: "Paris"))
        XCTAssertFalse(InstructionTasks.verify(response: "", answer: "71"))
    }

    // MARK: - Rankings

    func testRankingFollowsTheRule() throws {
        var builder = RankingBuilder(seed: 3)
        var firstPositions = Set<Int>()
        for task in InstructionTasks.generate(count: 700, seed: 8, split: .train) {
            let ranked = builder.ranking(for: task)
            XCTAssertEqual(ranked.responses.count, 4)
            XCTAssertEqual(Set(ranked.responses).count, 4, "\(ranked.responses)")
            XCTAssertNil(RankedResponses.problem(responses: ranked.responses, ranking: ranked.ranking))
            let best = ranked.ordered
            XCTAssertEqual(best[0], task.answer)
            XCTAssertTrue(best[1].contains(task.answer) && best[1] != task.answer, best[1])
            XCTAssertFalse(InstructionTasks.verify(response: best[2], answer: task.answer), best[2])
            XCTAssertTrue(task.distractors.contains(best[2]), best[2])
            XCTAssertFalse(InstructionTasks.verify(response: best[3], answer: task.answer), best[3])
            XCTAssertFalse(best[3].contains(task.answer) && best[3].count < 3 * task.answer.count, best[3])
            XCTAssertTrue(ranked.source?.hasPrefix("constructed: ranking rule") ?? false)
            firstPositions.insert(ranked.ranking[0])
        }
        XCTAssertEqual(firstPositions, [0, 1, 2, 3], "the best response should not sit in a fixed position")
    }

    func testModelSamplesAreGradedIntoTheRanking() throws {
        XCTAssertEqual(RankingBuilder.grade(sample: "71", answer: "71"), .correctAndClean)
        XCTAssertEqual(RankingBuilder.grade(sample: " 71.", answer: "71"), .correctButRambling)
        XCTAssertEqual(RankingBuilder.grade(sample: "72", answer: "71"), .wrong)
        XCTAssertEqual(RankingBuilder.grade(sample: "The answer is 71", answer: "71"), .wrong)
        XCTAssertEqual(RankingBuilder.grade(sample: "  ", answer: "71"), .offFormat)

        var builder = RankingBuilder(seed: 1)
        let ranked = builder.ranking(prompt: "What is 23 + 48?", answer: "71", samples: ["seventy-one", "71.", "70"])
        XCTAssertEqual(ranked.ordered[0], "71")
        XCTAssertEqual(ranked.ordered[1], "71.")          // sample, correct but not clean
        XCTAssertEqual(ranked.ordered[2], "seventy-one")  // first wrong sample takes the wrong slot
        XCTAssertFalse(ranked.responses.contains("70"))   // a second wrong sample would tie: dropped
        XCTAssertTrue(ranked.source?.contains("2 of 3 model samples") ?? false, ranked.source ?? "")
        XCTAssertTrue(RankingBuilder.holdsModelSamples(ranked))

        // Without distractors, a numeric answer gets an off-by-one wrong answer.
        let plain = builder.ranking(prompt: "What is 2 + 2?", answer: "4")
        XCTAssertFalse(RankingBuilder.holdsModelSamples(plain))
        XCTAssertTrue(["3", "5"].contains(plain.ordered[2]), plain.ordered[2])

        for task in InstructionTasks.generate(count: 300, seed: 2, split: .train) {
            let pair = builder.preferencePair(for: task)
            XCTAssertEqual(pair.chosen, task.answer)
            XCTAssertFalse(InstructionTasks.verify(response: pair.rejected, answer: task.answer))
            XCTAssertFalse(pair.rejected.trimmingCharacters(in: .whitespaces).isEmpty)
            XCTAssertTrue(pair.source?.hasPrefix("constructed: ") ?? false)
        }
    }

    func testTaskKindIsReadBackFromTheSource() {
        for kind in InstructionTaskKind.allCases {
            let task = InstructionTasks.generate(kind: kind, count: 1, seed: 1, split: .test)[0]
            XCTAssertEqual(InstructionTask.kind(ofSource: task.promptExample.source), kind)
            XCTAssertEqual(InstructionTask.kind(ofSource: task.sftExample.source), kind)   // ": reference answer" appended
        }
        XCTAssertNil(InstructionTask.kind(ofSource: "constructed: ranking rule correct-and-clean > wrong"))
        XCTAssertNil(InstructionTask.kind(ofSource: "constructed: InstructionTasks noSuchKind (train)"))
        XCTAssertNil(InstructionTask.kind(ofSource: nil))
    }

    func testRankingsRebuiltWithModelSamplesKeepTheTasksOfTheFiles() throws {
        let kinds: [InstructionTaskKind] = [.parity, .countLetters]
        let contents = InstructionTaskFiles.make(train: 30, dev: 5, test: 5, seed: 9, kinds: kinds)
        let tasks = InstructionTaskFiles.tasks(for: .rankings, count: 30, split: .train, seed: 9, kinds: kinds)
        XCTAssertEqual(tasks.map(\.prompt), contents.rankingsTrain.map(\.prompt))
        // The model's answers: right for even tasks, a wrong one for odd tasks.
        let samples = tasks.enumerated().map { i, task in [i % 2 == 0 ? task.answer : "zzz"] }
        let rankings = InstructionTaskFiles.rankings(for: tasks, split: .train, samples: samples, seed: 9)
        XCTAssertEqual(rankings.map(\.prompt), tasks.map(\.prompt))
        for (i, ranking) in rankings.enumerated() {
            XCTAssertEqual(ranking.ordered[0], tasks[i].answer)
            if i % 2 == 1 { XCTAssertEqual(ranking.ordered[2], "zzz") }   // the model's wrong answer takes the wrong slot
            XCTAssertTrue(ranking.source?.contains("1 of 1 model samples") ?? false, ranking.source ?? "")
        }
    }

    func testDecoysAreOtherProblemsRightAnswersAndWrongHere() {
        let tasks = InstructionTasks.generate(kind: .countLetters, count: 400, seed: 8, split: .train)
        var plain = RankingBuilder(seed: 5), withDecoys = RankingBuilder(seed: 5, decoys: true)
        var decoyOnes = 0, plainOnes = 0
        for task in tasks {
            let a = plain.ranking(for: task), b = withDecoys.ranking(for: task)
            for ranking in [a, b] {
                XCTAssertEqual(ranking.ordered[0], task.answer)
                XCTAssertFalse(InstructionTasks.verify(response: ranking.ordered[2], answer: task.answer), "\(task.prompt): \(ranking.ordered[2])")
            }
            if task.answer != "1" {
                plainOnes += a.ordered[2] == "1" ? 1 : 0
                decoyOnes += b.ordered[2] == "1" ? 1 : 0
            }
        }
        // "1", the most common right count, is wrong far more often among decoys than among
        // off-by-one answers, where only a right "2" or "0" makes it.
        let notOne = tasks.filter { $0.answer != "1" }.count
        XCTAssertGreaterThan(decoyOnes, notOne / 8, "decoy 1s \(decoyOnes), plain 1s \(plainOnes) of \(notOne)")
        XCTAssertGreaterThan(decoyOnes, plainOnes + 10)
        // The files: decoys in training rankings only; held-out wrong answers are the task's own.
        let train = InstructionTaskFiles.rankings(for: tasks, split: .train, seed: 2)
        let heldout = InstructionTaskFiles.rankings(for: tasks, split: .test, seed: 2)
        XCTAssertTrue(zip(tasks, heldout).allSatisfy { $0.distractors.contains($1.ordered[2]) })
        XCTAssertGreaterThan(zip(tasks, train).filter { !$0.distractors.contains($1.ordered[2]) }.count, tasks.count / 8)
        // A decoy is the answer of some problem of the same kind: a letter count.
        var builder = RankingBuilder(seed: 1)
        for task in tasks.prefix(50) {
            let decoy = builder.decoyAnswer(for: task)
            XCTAssertNotNil(decoy.flatMap { Int($0) }, task.prompt)
            XCTAssertNotEqual(decoy, task.answer)
        }
    }

    func testTaskFilesAreLabelledAndLoad() throws {
        let directory = try temporaryDirectory()
        try InstructionTaskFiles.write(to: directory, train: 70, dev: 14, test: 21, seed: 4)
        for name in [InstructionTaskFiles.sftTrain, InstructionTaskFiles.promptsTrain, InstructionTaskFiles.promptsDev, InstructionTaskFiles.promptsTest,
                     InstructionTaskFiles.rankingsTrain, InstructionTaskFiles.rankingsDev, InstructionTaskFiles.rankingsTest,
                     InstructionTaskFiles.preferencesTrain] {
            let text = try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
            for line in text.split(separator: "\n") {
                let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
                XCTAssertTrue((object["source"] as? String)?.hasPrefix("constructed: ") ?? false, "\(name): \(line)")
            }
        }
        XCTAssertEqual(try SFTDataset.load(directory.appendingPathComponent(InstructionTaskFiles.sftTrain)).examples.count, 70)
        let heldout = try PromptDataset.load(directory.appendingPathComponent(InstructionTaskFiles.promptsTest)).examples
        XCTAssertEqual(heldout.count, 21)
        XCTAssertTrue(heldout.allSatisfy { $0.answer != nil })
        XCTAssertEqual(try PromptDataset.load(directory.appendingPathComponent(InstructionTaskFiles.promptsDev)).examples.count, 14)
        let rankings = try PreferenceDataset.load(directory.appendingPathComponent(InstructionTaskFiles.rankingsTest)).records
        XCTAssertEqual(PreferenceDataset.pairs(rankings).count, 21 * 6)
        XCTAssertEqual(try PreferenceDataset.load(directory.appendingPathComponent(InstructionTaskFiles.preferencesTrain)).records.count, 70)
    }

    // MARK: - Bundled question-answer data

    func testBundledFAQFilesLoad() throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../data/alignment").standardizedFileURL
        for (name, language) in [("faq_python.jsonl", "en"), ("faq_debian_en.jsonl", "en"), ("faq_debian_zh.jsonl", "zh")] {
            let url = folder.appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw XCTSkip("\(url.path) is not here")
            }
            let (examples, skipped) = try SFTDataset.load(url)
            XCTAssertEqual(skipped, 0)
            XCTAssertGreaterThan(examples.count, 100, name)
            for example in examples {
                XCTAssertEqual(example.messages.map(\.role), ["user", "assistant"])
                XCTAssertLessThanOrEqual(example.messages[1].content.count, 600, name)
                XCTAssertFalse(example.messages[1].content.contains("``"), name)
                if language == "zh" {
                    XCTAssertTrue(RankingBuilder.isChinese(example.messages[0].content), example.messages[0].content)
                }
            }
        }
    }
}
