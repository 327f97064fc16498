import ArgumentParser
import Foundation
import LoomData
import LoomTokenizer

/// `loom bench tokenize`: training time and encoding throughput of the byte-level BPE, on one
/// thread, in the same terms as `Benchmarks/tokenize_peer.py` (Python `tokenizers`), so that
/// `Benchmarks/tokenize_compare.sh` can put the two side by side.
///
/// Encoding is measured on the whole text in one `encode` call: first with a fresh word
/// cache ("cold"), then the best of three further calls ("warm"); and line by line, one
/// `encode` per line (best of three), as corpora are usually encoded.
struct BenchTokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Benchmark tokenizer training (seconds) and encoding (MB/s).")

    @Option(help: "Text file to train on and encode (default: the .txt files under data/pretrain, concatenated in path order).")
    var file: String?

    @Option(help: "Vocabulary size to train.")
    var vocabSize = 4096

    @Option(help: "Also measure encoding with this existing tokenizer.json (e.g. GPT-2).")
    var tokenizer: String?

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    func run() throws {
        let (text, source) = try Self.loadText(file)
        let megabytes = Double(text.utf8.count) / 1e6

        var start = DispatchTime.now()
        let trained = ByteLevelBPETokenizer.train(texts: [text], vocabSize: vocabSize)
        let trainSeconds = Self.seconds(since: start)

        func measureEncode(_ tokenizer: ByteLevelBPETokenizer) -> (cold: Double, warm: Double, tokens: Int, lines: Double) {
            start = DispatchTime.now()
            let tokens = tokenizer.encode(text).count
            let cold = megabytes / Self.seconds(since: start)
            var best = 0.0
            for _ in 0..<3 {
                start = DispatchTime.now()
                _ = tokenizer.encode(text)
                best = max(best, megabytes / Self.seconds(since: start))
            }
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { String($0) + "\n" }
            var bestLines = 0.0
            for _ in 0..<3 {
                start = DispatchTime.now()
                for line in lines { _ = tokenizer.encode(line) }
                bestLines = max(bestLines, megabytes / Self.seconds(since: start))
            }
            return (cold, best, tokens, bestLines)
        }
        let encode = measureEncode(trained)
        var results: [(String, String)] = [
            ("implementation", "\"loom\""),
            ("file", "\"\(source)\""),
            ("bytes", "\(text.utf8.count)"),
            ("vocab_size", "\(trained.vocabularySize)"),
            ("train_seconds", String(format: "%.3f", trainSeconds)),
            ("encode_tokens", "\(encode.tokens)"),
            ("encode_cold_mb_per_s", String(format: "%.2f", encode.cold)),
            ("encode_mb_per_s", String(format: "%.2f", encode.warm)),
            ("encode_lines_mb_per_s", String(format: "%.2f", encode.lines)),
        ]
        if let path = tokenizer {
            let pretrained = try ByteLevelBPETokenizer(contentsOf: URL(fileURLWithPath: path))
            let measured = measureEncode(pretrained)
            results += [
                ("pretrained_encode_tokens", "\(measured.tokens)"),
                ("pretrained_encode_cold_mb_per_s", String(format: "%.2f", measured.cold)),
                ("pretrained_encode_mb_per_s", String(format: "%.2f", measured.warm)),
                ("pretrained_encode_lines_mb_per_s", String(format: "%.2f", measured.lines)),
            ]
        }
        if json {
            try StandardOutput.writeLine("{" + results.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}")
        } else {
            for (key, value) in results { try StandardOutput.writeLine("\(key): \(value)") }
        }
    }

    static func seconds(since start: DispatchTime) -> Double {
        Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
    }

    /// The text to use: `--file`, or the bundled pretraining .txt files (as
    /// tokenize_compare.sh assembles them), or, if there are none, a generated text.
    static func loadText(_ file: String?) throws -> (String, String) {
        if let file {
            guard let data = FileManager.default.contents(atPath: file) else { throw ValidationError("\(file): cannot read file") }
            return (String(decoding: data, as: UTF8.self), file)
        }
        let root = URL(fileURLWithPath: "data/pretrain")
        var paths: [String] = []
        if let walker = FileManager.default.enumerator(atPath: root.path) {
            for case let relative as String in walker where relative.hasSuffix(".txt") { paths.append(root.appendingPathComponent(relative).path) }
        }
        paths.sort { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        if !paths.isEmpty {
            let text = paths.compactMap { FileManager.default.contents(atPath: $0) }.map { String(decoding: $0, as: UTF8.self) }.joined()
            return (text, "data/pretrain/**/*.txt")
        }
        return (generatedText(bytes: 2_000_000), "generated")
    }

    /// Deterministic pseudo-English with Zipf-distributed words, for machines without data.
    static func generatedText(bytes: Int) -> String {
        let syllables = ["ka", "lo", "mi", "ne", "ru", "ta", "shi", "ven", "dor", "al", "est", "ing", "the", "and", "qu", "ph"]
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 { state = state &* 6364136223846793005 &+ 1442695040888963407; return state >> 33 }
        let words: [String] = (0..<5000).map { _ in (0..<(1 + Int(next() % 3))).map { _ in syllables[Int(next() % 16)] }.joined() }
        var text = ""
        while text.utf8.count < bytes {
            let rank = Int(Double(words.count) * pow(Double(next() % 1_000_000) / 1e6, 3))
            text += words[rank]
            let r = next() % 20
            text += r == 0 ? ".\n" : r == 1 ? ", " : " "
        }
        return text
    }
}
