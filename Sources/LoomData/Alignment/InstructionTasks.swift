import Foundation
import LoomTokenizer

/// The kinds of instruction task: short prompts with one exact, short answer (1–8 tokens), easy
/// enough for a tiny model pretrained for minutes to learn by supervised fine-tuning and to
/// improve on with verifiable rewards.
public enum InstructionTaskKind: String, CaseIterable, Codable, Sendable {
    /// "What is 23 + 48?" → "71" (addition and subtraction of numbers below 100, results ≥ 0).
    case arithmetic
    /// "Spell \"horse\" backwards." → "esroh"
    case reverseWord
    /// "Sort the letters of \"bread\" in alphabetical order." → "abder"
    case sortLetters
    /// "How many letters are in the word \"apple\"?" → "5"; also occurrences of one letter.
    case countLetters
    /// "name: Ada; city: Paris; age: 36. What is the city?" → "Paris"
    case recordField
    /// "Convert lemon to uppercase." → "LEMON"
    case uppercase
    /// "What number comes next: 3, 7, 11, 15, ?" → "19"
    case nextInSequence
    /// "Which is larger, 37 or 52?" → "52": a choice between two numbers in the prompt, so a
    /// small model starts well above zero and reinforcement learning has room to sharpen it.
    case compareNumbers
    /// "Repeat the word \"lemon\"." → "lemon": copying one word (an induction-head task).
    case repeatWord
    /// "Is 437 even or odd?" → "odd": decided by the last digit, a rule a tiny model learns.
    case parity
    /// "What is the last digit of 4827?" → "7"
    case lastDigit
}

/// Which of the three disjoint sets a problem belongs to: `train` for every training file
/// (SFT, RL prompts, rankings, preference pairs, pretraining worksheets), `dev` for choosing
/// settings, `test` for the figures a run reports, evaluated once.
public enum TaskSplit: String, CaseIterable, Codable, Sendable {
    case train
    case dev
    case test
}

/// One generated task: a prompt, its exact answer, and the problem behind the phrasing.
public struct InstructionTask: Equatable, Sendable {
    public var kind: InstructionTaskKind
    /// The text shown to the model (one of several phrasings, English or Chinese).
    public var prompt: String
    /// The one correct answer; `InstructionTasks.verify` checks responses against it.
    public var answer: String
    /// The problem independent of its phrasing (`"add:23:48"`).
    public var problem: String
    /// The problem up to every symmetry of its kind (`"add:23:48"` and `"add:48:23"` both give
    /// `"add:23:48"`; "which is larger, 31 or 83?" and "which is smaller, 83 or 31?" both give
    /// `"compare:31:83"`); it alone decides the split, so a problem and its twins are always on
    /// the same side.
    public var splitKey: String
    public var split: TaskSplit
    /// Plausible wrong answers (off by one, letters swapped, another field), none of which verifies.
    public var distractors: [String]
    /// "en" or "zh": the language of the phrasing.
    public var language: String

    public init(kind: InstructionTaskKind, prompt: String, answer: String, problem: String, splitKey: String? = nil, split: TaskSplit,
                distractors: [String], language: String) {
        self.kind = kind
        self.prompt = prompt
        self.answer = answer
        self.problem = problem
        self.splitKey = splitKey ?? problem
        self.split = split
        self.distractors = distractors
        self.language = language
    }

    /// The label written as `"source"` of every line made from this task.
    public var sourceLabel: String {
        "\(InstructionTask.sourcePrefix)\(kind.rawValue) (\(split.rawValue))"
    }

    static let sourcePrefix = "constructed: InstructionTasks "

    /// The task kind named in a `source` written from `sourceLabel` (also with a suffix such as
    /// ": reference answer"), or nil for any other source.
    public static func kind(ofSource source: String?) -> InstructionTaskKind? {
        guard let source, let range = source.range(of: sourcePrefix) else { return nil }
        return source[range.upperBound...].split(separator: " ").first.flatMap { InstructionTaskKind(rawValue: String($0)) }
    }

    /// A chat conversation with the reference answer as the assistant turn.
    public var sftExample: SFTExample {
        SFTExample(
            messages: [ChatMessage(role: "user", content: prompt), ChatMessage(role: "assistant", content: answer)],
            source: sourceLabel + ": reference answer"
        )
    }

    /// The prompt with its answer, for PPO / GRPO rewards and exact-match evaluation; the
    /// answer and the distractors are the choices of multiple-choice scoring (answer first).
    public var promptExample: PromptExample {
        PromptExample(prompt: prompt, answer: answer, source: sourceLabel, choices: distractors.isEmpty ? nil : [answer] + distractors)
    }
}

/// Seeded generation of instruction tasks, and the verifier that grades answers to them.
///
/// Train, dev and test problems are disjoint by construction: a problem's split is a fixed
/// function of its split key — its canonical form up to the symmetries of its kind (operand
/// order, larger/smaller of the same pair, anagrams, a word and its reversal, a number asked
/// about by two kinds) — one key in five going to test, one in five to dev, so no phrasing of a
/// test problem or of its twin can ever be generated for training or for dev.
///
///     let train = InstructionTasks.generate(kind: .arithmetic, count: 1000, seed: 1, split: .train)
///     let test = InstructionTasks.generate(count: 200, seed: 1, split: .test)   // all kinds
///     InstructionTasks.verify(response: " 71.\n", answer: "71")   // true
public enum InstructionTasks {
    /// Split keys are hashed into `splitModulus` buckets: bucket 0 is test, bucket 1 dev, the
    /// rest train.
    public static let splitModulus: UInt64 = 5
    /// The share of prompts phrased in Chinese: one in `chineseModulus`.
    public static let chineseModulus = 6

    /// The split of a problem, from a stable hash of its split key.
    public static func split(ofProblem splitKey: String) -> TaskSplit {
        switch TaskRandom.mix(TaskRandom.stableHash(splitKey)) % splitModulus {
        case 0: return .test
        case 1: return .dev
        default: return .train
        }
    }

    /// `count` tasks of one kind from one split. The same arguments give the same tasks. Problems
    /// do not repeat until 200 draws in a row find only repeats; after that (small problem spaces,
    /// such as a word list) problems repeat, in other phrasings.
    public static func generate(kind: InstructionTaskKind, count: Int, seed: UInt64, split: TaskSplit) -> [InstructionTask] {
        var rng = TaskRandom(seed: seed, stream: "\(kind.rawValue)/\(split.rawValue)")
        var tasks: [InstructionTask] = []
        tasks.reserveCapacity(count)
        var seen = Set<String>()
        var repeatsInARow = 0
        var spaceExhausted = false
        while tasks.count < count {
            let problem = drawProblem(kind, &rng)
            guard Self.split(ofProblem: problem.splitKey) == split else { continue }
            if !spaceExhausted && seen.contains(problem.canonical) {
                // Many repeats in a row: (nearly) every problem of this split has been drawn.
                repeatsInARow += 1
                spaceExhausted = repeatsInARow >= 200
                continue
            }
            repeatsInARow = 0
            seen.insert(problem.canonical)
            let chinese = rng.below(chineseModulus) == 0
            let phrasings = chinese ? problem.chinese : problem.english
            tasks.append(InstructionTask(
                kind: kind,
                prompt: rng.pick(phrasings),
                answer: problem.answer,
                problem: problem.canonical,
                splitKey: problem.splitKey,
                split: split,
                distractors: unique(problem.distractors.filter { !verify(response: $0, answer: problem.answer) }),
                language: chinese ? "zh" : "en"
            ))
        }
        return tasks
    }

    /// `count` tasks spread evenly over `kinds` (the first kinds get one more when it does not
    /// divide), in a seeded random order.
    public static func generate(kinds: [InstructionTaskKind] = InstructionTaskKind.allCases, count: Int, seed: UInt64, split: TaskSplit) -> [InstructionTask] {
        precondition(!kinds.isEmpty, "no task kinds")
        var tasks: [InstructionTask] = []
        for (index, kind) in kinds.enumerated() {
            let share = count / kinds.count + (index < count % kinds.count ? 1 : 0)
            tasks += generate(kind: kind, count: share, seed: seed, split: split)
        }
        var rng = TaskRandom(seed: seed, stream: "mix/\(split.rawValue)")
        rng.shuffle(&tasks)
        return tasks
    }

    /// Whether `response` is `answer`: exact match after trimming whitespace and one trailing
    /// period ("." or "。") from the response.
    public static func verify(response: String, answer: String) -> Bool {
        normalize(response) == normalize(answer)
    }

    /// The form `verify` compares: whitespace trimmed, then one trailing period, then whitespace again.
    public static func normalize(_ text: String) -> String {
        var trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.hasSuffix(".") || trimmed.hasSuffix("。") { trimmed.removeLast() }
        return trimmed.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    // MARK: - Problems

    struct Problem {
        var canonical: String
        var answer: String
        var english: [String]
        var chinese: [String]
        var distractors: [String]
        /// The canonical form up to the kind's symmetries (default: `canonical`).
        var splitKey: String

        init(canonical: String, answer: String, english: [String], chinese: [String], distractors: [String], splitKey: String? = nil) {
            self.canonical = canonical; self.answer = answer; self.english = english; self.chinese = chinese
            self.distractors = distractors; self.splitKey = splitKey ?? canonical
        }
    }

    static func drawProblem(_ kind: InstructionTaskKind, _ rng: inout TaskRandom) -> Problem {
        switch kind {
        case .arithmetic: return arithmetic(&rng)
        case .reverseWord: return reverseWord(&rng)
        case .sortLetters: return sortLetters(&rng)
        case .countLetters: return countLetters(&rng)
        case .recordField: return recordField(&rng)
        case .uppercase: return uppercase(&rng)
        case .nextInSequence: return nextInSequence(&rng)
        case .compareNumbers: return compareNumbers(&rng)
        case .repeatWord: return repeatWord(&rng)
        case .parity: return parity(&rng)
        case .lastDigit: return lastDigit(&rng)
        }
    }

    static func arithmetic(_ rng: inout TaskRandom) -> Problem {
        var a = rng.int(in: 0...99)
        var b = rng.int(in: 0...99)
        if rng.below(2) == 0 {
            let sum = a + b
            return Problem(
                canonical: "add:\(a):\(b)",
                answer: "\(sum)",
                english: ["What is \(a) + \(b)?", "Compute \(a) + \(b).", "Add \(a) and \(b).", "What is the sum of \(a) and \(b)?", "\(a) plus \(b) equals what?"],
                chinese: ["\(a) 加 \(b) 等于多少？", "计算 \(a) + \(b)。"],
                distractors: ["\(sum + 1)", "\(max(sum - 1, 0))", "\(sum + 10)", "\(abs(a - b))"],
                splitKey: "add:\(min(a, b)):\(max(a, b))"   // a + b = b + a
            )
        }
        if a < b { swap(&a, &b) }
        let difference = a - b
        return Problem(
            canonical: "sub:\(a):\(b)",
            answer: "\(difference)",
            english: ["What is \(a) - \(b)?", "Compute \(a) - \(b).", "Subtract \(b) from \(a).", "What is \(a) minus \(b)?"],
            chinese: ["\(a) 减 \(b) 等于多少？", "计算 \(a) - \(b)。"],
            distractors: ["\(difference + 1)", "\(max(difference - 1, 0))", "\(a + b)", "\(difference + 10)"]
        )
    }

    /// Words whose reversal differs from the word (no palindromes).
    static let reversibleWords = TaskVocabulary.words.filter { String($0.reversed()) != $0 }
    /// Words whose letters are not already in order.
    static let unsortedWords = TaskVocabulary.words.filter { String($0.sorted()) != $0 }

    static func reverseWord(_ rng: inout TaskRandom) -> Problem {
        let word = rng.pick(reversibleWords)
        let reversed = String(word.reversed())
        return Problem(
            canonical: "reverse:\(word)",
            answer: reversed,
            english: ["Reverse the letters of the word \"\(word)\".", "Spell \"\(word)\" backwards.", "Write the word \(word) backwards.", "What is \"\(word)\" reversed?"],
            chinese: ["把单词 \(word) 的字母倒过来写。", "倒着拼写 \(word)。"],
            distractors: [word, swapAdjacent(reversed, &rng), String(reversed.dropLast())],
            splitKey: "reverse:\(min(word, reversed))"   // "stop" reversed is "pots" reversed's answer
        )
    }

    static func sortLetters(_ rng: inout TaskRandom) -> Problem {
        let word = rng.pick(unsortedWords)
        let sorted = String(word.sorted())
        return Problem(
            canonical: "sort:\(word)",
            answer: sorted,
            english: ["Sort the letters of \"\(word)\" in alphabetical order.", "Arrange the letters of \(word) alphabetically.", "Put the letters of the word \"\(word)\" in alphabetical order."],
            chinese: ["把 \(word) 的字母按字母表顺序排列。"],
            distractors: [word, swapAdjacent(sorted, &rng), String(sorted.reversed())],
            splitKey: "sort:\(sorted)"   // anagrams share the answer
        )
    }

    static func countLetters(_ rng: inout TaskRandom) -> Problem {
        let word = rng.pick(TaskVocabulary.words)
        if rng.below(2) == 0 {
            let length = word.count
            return Problem(
                canonical: "length:\(word)",
                answer: "\(length)",
                english: ["How many letters are in the word \"\(word)\"?", "Count the letters in \"\(word)\".", "How many letters does \(word) have?"],
                chinese: ["单词 \(word) 有几个字母？"],
                distractors: ["\(length + 1)", "\(length - 1)"]
            )
        }
        let letter = rng.pick(Array(word))
        let occurrences = word.filter { $0 == letter }.count
        return Problem(
            canonical: "occurrences:\(letter):\(word)",
            answer: "\(occurrences)",
            english: ["How many times does the letter \"\(letter)\" appear in \"\(word)\"?", "Count the letter \(letter) in the word \(word).", "How often does \"\(letter)\" occur in \"\(word)\"?"],
            chinese: ["字母 \(letter) 在 \(word) 中出现了几次？"],
            distractors: ["\(occurrences + 1)", "\(occurrences - 1)", "\(word.count)"]
        )
    }

    static func recordField(_ rng: inout TaskRandom) -> Problem {
        let values = [
            ("name", "姓名", rng.pick(TaskVocabulary.names)),
            ("city", "城市", rng.pick(TaskVocabulary.cities)),
            ("age", "年龄", "\(rng.int(in: 18...90))"),
        ]
        var order = [0, 1, 2]
        rng.shuffle(&order)
        let asked = rng.below(3)
        let fields = order.map { values[$0] }
        let english = fields.map { "\($0.0): \($0.2)" }.joined(separator: "; ") + "."
        let chinese = fields.map { "\($0.1)：\($0.2)" }.joined(separator: "；") + "。"
        let (field, fieldChinese, answer) = values[asked]
        var distractors = values.filter { $0.0 != field }.map(\.2)
        if field == "age", let age = Int(answer) { distractors.append("\(age + 1)") }
        return Problem(
            canonical: "record:" + fields.map { "\($0.0)=\($0.2)" }.joined(separator: ";") + ";ask=\(field)",
            answer: answer,
            english: [
                "\(english) What is the \(field)?",
                "Here is a record: \(english) What is the \(field)?",
                "Read this record: \(english) Give the \(field).",
                "From the record \"\(english)\", what is the \(field)?",
            ],
            chinese: ["\(chinese)\(fieldChinese)是什么？", "根据记录“\(chinese)”，\(fieldChinese)是多少？"],
            distractors: distractors,
            // The same record with its fields in another order is the same question.
            splitKey: "record:" + values.map { "\($0.0)=\($0.2)" }.joined(separator: ";") + ";ask=\(field)"
        )
    }

    static func uppercase(_ rng: inout TaskRandom) -> Problem {
        let word = rng.pick(TaskVocabulary.words)
        let upper = word.uppercased()
        return Problem(
            canonical: "upper:\(word)",
            answer: upper,
            english: ["Write \"\(word)\" in capital letters.", "Convert \(word) to uppercase.", "What is \"\(word)\" in uppercase?"],
            chinese: ["把 \(word) 转换成大写字母。"],
            distractors: [word, word.prefix(1).uppercased() + word.dropFirst(), String(upper.dropLast())]
        )
    }

    static func nextInSequence(_ rng: inout TaskRandom) -> Problem {
        let start = rng.int(in: 0...30)
        let step = rng.int(in: 1...10)
        let shown = rng.int(in: 3...5)
        let terms = (0..<shown).map { start + $0 * step }
        let next = start + shown * step
        let list = terms.map(String.init).joined(separator: ", ")
        return Problem(
            canonical: "sequence:\(start):\(step):\(shown)",
            answer: "\(next)",
            english: ["What number comes next: \(list), ?", "Continue the sequence: \(list), ...", "What is the next number in the sequence \(list)?"],
            chinese: ["数列 \(list) 的下一个数是什么？"],
            distractors: ["\(next + 1)", "\(terms[shown - 1])", "\(next + step)"]
        )
    }

    static func compareNumbers(_ rng: inout TaskRandom) -> Problem {
        let a = rng.int(in: 0...99)
        var b = rng.int(in: 0...98)
        if b >= a { b += 1 }
        let larger = rng.below(2) == 0
        let answer = larger ? max(a, b) : min(a, b)
        let other = larger ? min(a, b) : max(a, b)
        let word = larger ? "larger" : "smaller"
        return Problem(
            canonical: "\(larger ? "max" : "min"):\(a):\(b)",
            answer: "\(answer)",
            english: ["Which is \(word), \(a) or \(b)?", "Of \(a) and \(b), which number is \(word)?", "Give the \(word) number: \(a) or \(b).", "Pick the \(word) of \(a) and \(b)."],
            chinese: ["\(a) 和 \(b) 哪个更\(larger ? "大" : "小")？"],
            distractors: ["\(other)", "\(answer + 1)", "\(a + b)"],
            // Operand order and larger/smaller: one pair of numbers is one problem.
            splitKey: "compare:\(min(a, b)):\(max(a, b))"
        )
    }

    static func repeatWord(_ rng: inout TaskRandom) -> Problem {
        let word = rng.pick(TaskVocabulary.words)
        return Problem(
            canonical: "repeat:\(word)",
            answer: word,
            english: ["Repeat the word \"\(word)\".", "Say \(word).", "Write the word \(word) again.", "Echo this word: \(word)"],
            chinese: ["重复单词 \(word)。"],
            distractors: [word.uppercased(), String(word.dropLast()), word + word.suffix(1)]
        )
    }

    static func parity(_ rng: inout TaskRandom) -> Problem {
        let n = rng.int(in: 0...999)
        let answer = n % 2 == 0 ? "even" : "odd"
        return Problem(
            canonical: "parity:\(n)",
            answer: answer,
            english: ["Is \(n) even or odd?", "Is the number \(n) odd or even?", "Tell me whether \(n) is even or odd.", "\(n): even or odd?"],
            chinese: ["\(n) 是奇数还是偶数？回答 even 或 odd。"],
            distractors: [n % 2 == 0 ? "odd" : "even", "\(n)"],
            splitKey: "number:\(n)"   // shared with lastDigit: the last digit of n decides its parity
        )
    }

    static func lastDigit(_ rng: inout TaskRandom) -> Problem {
        let n = rng.int(in: 10...99_999)
        let digit = n % 10
        return Problem(
            canonical: "lastdigit:\(n)",
            answer: "\(digit)",
            english: ["What is the last digit of \(n)?", "Give the final digit of the number \(n).", "Which digit does \(n) end with?"],
            chinese: ["\(n) 的最后一位数字是几？"],
            distractors: ["\((digit + 1) % 10)", "\(n / 10 % 10)", "\(n)"],
            splitKey: "number:\(n)"
        )
    }

    /// The strings in order, without repeats.
    static func unique(_ strings: [String]) -> [String] {
        var seen = Set<String>()
        return strings.filter { seen.insert($0).inserted }
    }

    /// The text with two neighbouring letters exchanged (different letters, so it differs).
    static func swapAdjacent(_ text: String, _ rng: inout TaskRandom) -> String {
        var letters = Array(text)
        let positions = (0..<max(letters.count - 1, 0)).filter { letters[$0] != letters[$0 + 1] }
        guard !positions.isEmpty else { return text + text.suffix(1) }
        let i = rng.pick(positions)
        letters.swapAt(i, i + 1)
        return String(letters)
    }
}
