import ArgumentParser
import Foundation
import LoomData
import LoomTokenizer

/// `loom tokenize`: encode text to ids (a JSON array) or, with `--decode`, ids back to text.
///
/// ```
/// loom tokenize --tokenizer model/tokenizer.json --text "Hello world"      # [9906, 1917]
/// loom tokenize --tokenizer model --decode --text "[9906, 1917]"            # Hello world
/// ```
struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Encode text to token ids (JSON array), or decode a JSON array of ids to text.")

    @Option(help: "A tokenizer.json file, or a model directory containing one.")
    var tokenizer: String

    @Option(help: "The input: text to encode, or with --decode a JSON array of ids.")
    var text: String?

    @Option(help: "Read the input from this file instead of --text.")
    var file: String?

    @Flag(help: "Decode a JSON array of ids to text.")
    var decode = false

    @Flag(help: "Encode special-token text such as <|endoftext|> as plain text.")
    var noSpecialTokens = false

    @Flag(help: "Also add the special tokens the tokenizer puts around a prompt (Llama 3's <|begin_of_text|>), as Hugging Face's add_special_tokens=True; the ids `loom generate` and `loom serve` give a model for a plain prompt.")
    var addSpecialTokens = false

    func validate() throws {
        if (text == nil) == (file == nil) { throw ValidationError("give exactly one of --text and --file") }
        if decode && addSpecialTokens { throw ValidationError("--add-special-tokens applies to encoding, not to --decode") }
    }

    func run() throws {
        let tokenizer = try ByteLevelBPETokenizer(contentsOf: URL(fileURLWithPath: self.tokenizer))
        let input: String
        if let text {
            input = text
        } else {
            let path = file!
            guard let data = FileManager.default.contents(atPath: path) else {
                throw TokenizeCommandError(message: "\(path): cannot read file")
            }
            input = String(decoding: data, as: UTF8.self)
        }
        if decode {
            let source = file ?? "--text"
            guard let parsed = try? JSONSerialization.jsonObject(with: Data(input.utf8)) as? [Any] else {
                throw TokenizeCommandError(message: "\(source): expected a JSON array of token ids")
            }
            var ids: [Int] = []
            for (i, value) in parsed.enumerated() {
                guard let id = value as? Int, id >= 0, id < tokenizer.vocabularySize else {
                    throw TokenizeCommandError(message: "\(source): element \(i) (\(value)) is not a token id below \(tokenizer.vocabularySize)")
                }
                ids.append(id)
            }
            let decoded = tokenizer.decode(ids)
            try StandardOutput.write(decoded.hasSuffix("\n") ? decoded : decoded + "\n")
        } else {
            let ids = addSpecialTokens ? tokenizer.encodeAsPrompt(input, allowSpecialTokens: !noSpecialTokens)
                : tokenizer.encode(input, allowSpecialTokens: !noSpecialTokens)
            try StandardOutput.writeLine("[" + ids.map(String.init).joined(separator: ", ") + "]")
        }
    }
}

/// A failure while running `loom tokenize` (bad input file or ids), reported without the usage text.
struct TokenizeCommandError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
