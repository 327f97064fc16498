import Foundation
import LoomSupport

// Reading and writing Hugging Face tokenizer.json and tokenizer_config.json.
//
// Loom accepts exactly the byte-level BPE shapes it can reproduce bit for bit, and says so
// when a file is anything else: a tokenizer that loads but splits text differently from
// Python would silently produce different ids, which is worse than an error.

extension ByteLevelBPETokenizer {
    /// Loads a Hugging Face byte-level BPE tokenizer.
    ///
    /// `url` is either a tokenizer.json file or a model directory containing one. A
    /// tokenizer_config.json next to it, if present, supplies the eos/bos/pad tokens, the
    /// chat template text and `model_max_length`; a chat_template.jinja next to it supplies
    /// the chat template instead; without either the chat template is ChatML.
    /// Both merge formats are read: `["a b", …]` and `[["a", "b"], …]`.
    public convenience init(contentsOf url: URL) throws {
        let fileManager = FileManager.default
        var isDirectory: ObjCBool = false
        guard fileManager.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw TokenizerError(file: url.path, "no such file or directory")
        }
        let jsonURL = isDirectory.boolValue ? url.appendingPathComponent("tokenizer.json") : url
        guard fileManager.fileExists(atPath: jsonURL.path) else {
            throw TokenizerError(file: jsonURL.path, "no such file (a model directory must contain tokenizer.json)")
        }
        var parts = try TokenizerJSON.parseTokenizer(Self.read(jsonURL), file: jsonURL.path)
        let configURL = jsonURL.deletingLastPathComponent().appendingPathComponent("tokenizer_config.json")
        if fileManager.fileExists(atPath: configURL.path) {
            try TokenizerJSON.applyConfig(Self.read(configURL), file: configURL.path, to: &parts)
        }
        // transformers 4.49 and later save the template as its own file, which wins over
        // tokenizer_config.json's chat_template when both are there (as transformers reads them).
        let templateURL = jsonURL.deletingLastPathComponent().appendingPathComponent(Self.chatTemplateFileName)
        if fileManager.fileExists(atPath: templateURL.path) {
            guard let text = String(data: try Self.read(templateURL), encoding: .utf8) else {
                throw TokenizerError(file: templateURL.path, "is not UTF-8 text")
            }
            parts.chatTemplateJinja = text
        }
        try self.init(parts: parts, file: jsonURL.path)
    }

    /// The file in which recent `transformers` versions save a tokenizer's chat template.
    public static let chatTemplateFileName = "chat_template.jinja"

    private static func read(_ url: URL) throws -> Data {
        do {
            return try Data(contentsOf: url)
        } catch {
            throw TokenizerError(file: url.path, "cannot read: \(error.localizedDescription)")
        }
    }

    /// Writes `tokenizer.json`, `tokenizer_config.json` and `generation_config.json` into
    /// `directory` (created if needed). Each file is written to a temporary file and renamed
    /// into place, so a crash never leaves a half-written tokenizer.
    public func save(to directory: URL) throws {
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw TokenizerError(file: directory.path, "cannot create directory: \(error.localizedDescription)")
        }
        let files = [("tokenizer.json", try tokenizerJSON()), ("tokenizer_config.json", try tokenizerConfigJSON()),
                     ("generation_config.json", generationConfigJSON())]
        for (name, data) in files {
            let url = directory.appendingPathComponent(name)
            do {
                try AtomicFile.write(data, to: url)
            } catch let error as AtomicFileError {
                throw TokenizerError(file: url.path, error.reason)
            }
        }
    }

    /// The tokenizer.json document. Python `tokenizers` loads it and produces the same ids:
    /// Loom-trained tokenizers record their pre-tokenizer as a `Split` on
    /// `PreTokenizerPattern.loomRegex` followed by `ByteLevel(use_regex: false)`.
    public func tokenizerJSON() throws -> Data {
        var out = "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": ["
        for (i, token) in parts.addedTokens.sorted(by: { $0.id < $1.id }).enumerated() {
            out += i == 0 ? "\n" : ",\n"
            out += "    {\"id\": \(token.id), \"content\": \(jsonQuote(token.content)), \"single_word\": \(token.singleWord), "
            out += "\"lstrip\": \(token.leftStrip), \"rstrip\": \(token.rightStrip), \"normalized\": \(token.normalized), \"special\": \(token.special)}"
        }
        out += "\n  ],\n  \"normalizer\": " + (parts.normalizeNFC ? "{\"type\": \"NFC\"}" : "null") + ",\n"
        let prefix = parts.addPrefixSpace
        switch parts.pattern {
        case .gpt2:
            out += "  \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": \(prefix), \"trim_offsets\": true, \"use_regex\": true},\n"
        case .smollm:
            // SmolLM's own tokenizer.json: single digits first, then GPT-2's ByteLevel regex.
            out += "  \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [\n"
            out += "    {\"type\": \"Digits\", \"individual_digits\": true},\n"
            out += "    {\"type\": \"ByteLevel\", \"add_prefix_space\": \(prefix), \"trim_offsets\": true, \"use_regex\": true}\n  ]},\n"
        case .loom, .llama3, .qwen2:
            let regex = parts.pattern == .loom ? PreTokenizerPattern.loomRegex
                : parts.pattern == .llama3 ? PreTokenizerPattern.llama3Regex : PreTokenizerPattern.qwen2Regex
            out += "  \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [\n"
            out += "    {\"type\": \"Split\", \"pattern\": {\"Regex\": \(jsonQuote(regex))}, \"behavior\": \"Isolated\", \"invert\": false},\n"
            out += "    {\"type\": \"ByteLevel\", \"add_prefix_space\": \(prefix), \"trim_offsets\": false, \"use_regex\": false}\n  ]},\n"
        }
        out += "  \"post_processor\": \(postProcessorJSON()),\n"
        out += "  \"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": true, \"use_regex\": true},\n"
        out += "  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n    \"unk_token\": null,\n"
        out += "    \"continuing_subword_prefix\": null,\n    \"end_of_word_suffix\": null,\n    \"fuse_unk\": false,\n"
        out += "    \"byte_fallback\": false,\n    \"ignore_merges\": \(parts.ignoreMerges),\n    \"vocab\": {"
        for (i, entry) in parts.modelVocab.sorted(by: { $0.value < $1.value }).enumerated() {
            out += i == 0 ? "\n      " : ",\n      "
            out += jsonQuote(entry.key) + ": \(entry.value)"
        }
        out += "\n    },\n    \"merges\": ["
        for (i, merge) in parts.merges.enumerated() {
            out += i == 0 ? "\n      [" : ",\n      ["
            out += jsonQuote(merge.left) + ", " + jsonQuote(merge.right) + "]"
        }
        out += "\n    ]\n  }\n}\n"
        return Data(out.utf8)
    }

    /// The post_processor written to tokenizer.json: ByteLevel, with a TemplateProcessing that
    /// adds the prompt's special tokens when there are any (as transformers writes Llama 3's).
    func postProcessorJSON() -> String {
        let byteLevel = "{\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": false, \"use_regex\": true}"
        let (prefix, suffix) = (parts.prefixTokenIDs, parts.suffixTokenIDs)
        if prefix.isEmpty && suffix.isEmpty { return byteLevel }
        func special(_ id: Int, _ typeID: Int) -> String { "{\"SpecialToken\": {\"id\": \(jsonQuote(tokenString(id))), \"type_id\": \(typeID)}}" }
        func sequence(_ name: String, _ typeID: Int) -> String { "{\"Sequence\": {\"id\": \"\(name)\", \"type_id\": \(typeID)}}" }
        let single = prefix.map { special($0, 0) } + [sequence("A", 0)] + suffix.map { special($0, 0) }
        let pair = single + prefix.map { special($0, 1) } + [sequence("B", 1)] + suffix.map { special($0, 1) }
        let specials = Set(prefix + suffix).sorted().map { id in
            "\(jsonQuote(tokenString(id))): {\"id\": \(jsonQuote(tokenString(id))), \"ids\": [\(id)], \"tokens\": [\(jsonQuote(tokenString(id)))]}"
        }
        let template = "{\"type\": \"TemplateProcessing\", \"single\": [\(single.joined(separator: ", "))], \"pair\": [\(pair.joined(separator: ", "))], \"special_tokens\": {\(specials.joined(separator: ", "))}}"
        return "{\"type\": \"Sequence\", \"processors\": [\(byteLevel), \(template)]}"
    }

    /// The tokenizer_config.json document that `transformers` reads: special tokens, the chat
    /// template (Jinja), `model_max_length`, and `clean_up_tokenization_spaces: false` so that
    /// Python's decode does not rewrite " ." into "." and agrees with Loom's.
    public func tokenizerConfigJSON() throws -> Data {
        let eos = tokenString(endOfTextID)
        let bos = parts.bosToken.flatMap { tokenIndex[$0] != nil ? $0 : nil } ?? eos
        var out = "{\n  \"add_bos_token\": \(parts.addBOSToken),\n  \"add_eos_token\": false,\n  \"added_tokens_decoder\": {"
        for (i, token) in parts.addedTokens.sorted(by: { $0.id < $1.id }).enumerated() {
            out += i == 0 ? "\n" : ",\n"
            out += "    \"\(token.id)\": {\"content\": \(jsonQuote(token.content)), \"lstrip\": \(token.leftStrip), "
            out += "\"normalized\": \(token.normalized), \"rstrip\": \(token.rightStrip), \"single_word\": \(token.singleWord), \"special\": \(token.special)}"
        }
        out += "\n  },\n"
        out += "  \"bos_token\": \(jsonQuote(bos)),\n"
        out += "  \"chat_template\": \(jsonQuote(chatTemplate.jinja)),\n"
        out += "  \"clean_up_tokenization_spaces\": false,\n"
        out += "  \"eos_token\": \(jsonQuote(eos)),\n"
        // 1e30 is transformers' own "no limit" value (VERY_LARGE_INTEGER).
        out += "  \"model_max_length\": \(modelMaxLength.map(String.init) ?? "1000000000000000019884624838656"),\n"
        if let padID { out += "  \"pad_token\": \(jsonQuote(tokenString(padID))),\n" }
        out += "  \"tokenizer_class\": \"PreTrainedTokenizerFast\""
        if let unknown = parts.unknownToken { out += ",\n  \"unk_token\": \(jsonQuote(unknown))" }
        out += "\n}\n"
        return Data(out.utf8)
    }

    /// The ids that end a generation: the end-of-text token and, when the vocabulary has it,
    /// `<|im_end|>`, which closes every chat turn — the stops `loom generate` and `loom chat` use.
    public var stopTokenIDs: [Int] {
        var ids = [endOfTextID]
        if let end = addedTokenID("<|im_end|>"), end != endOfTextID { ids.append(end) }
        return ids
    }

    /// The generation_config.json document, as Hugging Face chat models write it: `eos_token_id`
    /// lists every stop token, so that `transformers`' `generate` ends a chat answer at
    /// `<|im_end|>` as Loom does, instead of running on until `<|endoftext|>` (config.json's
    /// `eos_token_id`, which pretraining uses between documents).
    public func generationConfigJSON() -> Data {
        var out = "{\n"
        if let bos = parts.bosToken.flatMap({ tokenIndex[$0] }) { out += "  \"bos_token_id\": \(bos),\n" }
        let stops = stopTokenIDs
        out += "  \"eos_token_id\": " + (stops.count == 1 ? "\(stops[0])" : "[" + stops.map(String.init).joined(separator: ", ") + "]")
        if let padID { out += ",\n  \"pad_token_id\": \(padID)" }
        out += "\n}\n"
        return Data(out.utf8)
    }

    /// The added-token text or vocabulary spelling of `id`.
    func tokenString(_ id: Int) -> String {
        if let token = parts.addedTokens.first(where: { $0.id == id }) { return token.content }
        return parts.modelVocab.first { $0.value == id }?.key ?? ""
    }
}

/// JSON string literal with the escapes JSON requires (and U+007F, as tokenizer.json files
/// written by Loom always had it); other characters are written as UTF-8.
func jsonQuote(_ string: String) -> String {
    JSONString.quoted(string, alsoEscaping: .delete)
}

/// Parsing of the two Hugging Face files into `TokenizerParts`.
enum TokenizerJSON {
    static func object(_ data: Data, file: String) throws -> [String: Any] {
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw TokenizerError(file: file, "invalid JSON: \(error.localizedDescription)")
        }
        guard let object = parsed as? [String: Any] else { throw TokenizerError(file: file, "invalid JSON: the top level is not an object") }
        return object
    }

    static func int(_ value: Any?) -> Int? {
        if let value = value as? Int { return value }
        if let value = value as? Double, value.rounded() == value, abs(value) < 9e18 { return Int(value) }
        return nil
    }

    static func bool(_ value: Any?, default fallback: Bool) -> Bool {
        if let value = value as? Bool { return value }
        if let value = value as? NSNumber { return value.boolValue }
        return fallback
    }

    static func isNull(_ value: Any?) -> Bool { value == nil || value is NSNull }

    static func parseTokenizer(_ data: Data, file: String) throws -> TokenizerParts {
        let root = try object(data, file: file)
        guard let model = root["model"] as? [String: Any] else { throw TokenizerError(file: file, "missing field \"model\"") }
        let type = model["type"] as? String ?? (model["merges"] != nil ? "BPE" : "unknown")
        guard type == "BPE" else { throw TokenizerError(file: file, "unsupported model type \"\(type)\" (Loom reads byte-level BPE only)") }
        for field in ["continuing_subword_prefix", "end_of_word_suffix"] where !isNull(model[field]) {
            throw TokenizerError(file: file, "unsupported model.\(field) (byte-level BPE does not use it)")
        }
        guard let rawVocab = model["vocab"] as? [String: Any] else { throw TokenizerError(file: file, "missing field \"model.vocab\"") }
        var vocab: [String: Int] = [:]
        vocab.reserveCapacity(rawVocab.count)
        for (key, value) in rawVocab {
            guard let id = int(value) else { throw TokenizerError(file: file, "model.vocab[\(key.debugDescription)] is not an integer") }
            vocab[key] = id
        }
        guard let rawMerges = model["merges"] as? [Any] else { throw TokenizerError(file: file, "missing field \"model.merges\"") }
        var merges: [(left: String, right: String)] = []
        merges.reserveCapacity(rawMerges.count)
        for (i, raw) in rawMerges.enumerated() {
            if let line = raw as? String {
                let sides = line.split(separator: " ", omittingEmptySubsequences: false)
                guard sides.count == 2 else { throw TokenizerError(file: file, "model.merges[\(i)] \(line.debugDescription) is not \"left right\"") }
                merges.append((String(sides[0]), String(sides[1])))
            } else if let pair = raw as? [Any], pair.count == 2, let left = pair[0] as? String, let right = pair[1] as? String {
                merges.append((left, right))
            } else {
                throw TokenizerError(file: file, "model.merges[\(i)] is neither \"left right\" nor [\"left\", \"right\"]")
            }
        }

        var addedTokens: [AddedToken] = []
        for (i, raw) in (root["added_tokens"] as? [Any] ?? []).enumerated() {
            guard let entry = raw as? [String: Any], let id = int(entry["id"]), let content = entry["content"] as? String else {
                throw TokenizerError(file: file, "added_tokens[\(i)] needs an integer \"id\" and a string \"content\"")
            }
            var token = AddedToken(id: id, content: content, special: bool(entry["special"], default: false))
            token.singleWord = bool(entry["single_word"], default: false)
            token.leftStrip = bool(entry["lstrip"], default: false)
            token.rightStrip = bool(entry["rstrip"], default: false)
            token.normalized = bool(entry["normalized"], default: false)
            addedTokens.append(token)
        }

        var normalizeNFC = false
        if let normalizer = root["normalizer"], !isNull(normalizer) {
            let kind = (normalizer as? [String: Any])?["type"] as? String ?? "?"
            guard kind == "NFC" else { throw TokenizerError(file: file, "unsupported normalizer \"\(kind)\" (Loom supports none or NFC)") }
            normalizeNFC = true
        }
        let (pattern, addPrefixSpace) = try parsePreTokenizer(root["pre_tokenizer"], file: file)
        var parts = TokenizerParts(modelVocab: vocab, merges: merges, addedTokens: addedTokens, pattern: pattern)
        parts.addPrefixSpace = addPrefixSpace
        parts.ignoreMerges = bool(model["ignore_merges"], default: false)
        parts.normalizeNFC = normalizeNFC
        (parts.prefixTokenIDs, parts.suffixTokenIDs) = try parsePostProcessor(root["post_processor"], file: file)
        return parts
    }

    /// The special-token ids a post-processor adds before and after a single text. Accepts
    /// none, `ByteLevel` (it changes offsets only), `TemplateProcessing` whose `single` template
    /// is special tokens around `$A` (Llama 3: `<|begin_of_text|> $A`), and a `Sequence` of
    /// these; other post-processors (BERT's, RoBERTa's) are refused rather than ignored.
    static func parsePostProcessor(_ raw: Any?, file: String) throws -> (prefix: [Int], suffix: [Int]) {
        guard let raw, !isNull(raw) else { return ([], []) }
        guard let processor = raw as? [String: Any], let type = processor["type"] as? String else {
            throw TokenizerError(file: file, "post_processor is not an object with a \"type\"")
        }
        switch type {
        case "ByteLevel":
            return ([], [])
        case "Sequence":
            var result: (prefix: [Int], suffix: [Int]) = ([], [])
            for inner in processor["processors"] as? [Any] ?? [] {
                let (prefix, suffix) = try parsePostProcessor(inner, file: file)
                guard (prefix.isEmpty && suffix.isEmpty) || (result.prefix.isEmpty && result.suffix.isEmpty) else {
                    throw TokenizerError(file: file, "post_processor has two templates that add special tokens")
                }
                if !prefix.isEmpty || !suffix.isEmpty { result = (prefix, suffix) }
            }
            return result
        case "TemplateProcessing":
            guard let single = processor["single"] as? [Any] else {
                throw TokenizerError(file: file, "post_processor TemplateProcessing has no \"single\" template")
            }
            let specials = processor["special_tokens"] as? [String: Any] ?? [:]
            var prefix: [Int] = [], suffix: [Int] = [], sawText = false
            for (i, piece) in single.enumerated() {
                let item = piece as? [String: Any] ?? [:]
                if let sequence = item["Sequence"] as? [String: Any] {
                    guard sequence["id"] as? String == "A", !sawText else {
                        throw TokenizerError(file: file, "post_processor.single[\(i)]: only one sequence, $A, is expected in a single-text template")
                    }
                    sawText = true
                } else if let special = item["SpecialToken"] as? [String: Any], let name = special["id"] as? String {
                    guard let entry = specials[name] as? [String: Any], let ids = entry["ids"] as? [Any],
                          case let values = ids.compactMap({ int($0) }), values.count == ids.count, !values.isEmpty else {
                        throw TokenizerError(file: file, "post_processor.single[\(i)]: special token \(name.debugDescription) has no ids in special_tokens")
                    }
                    if sawText { suffix += values } else { prefix += values }
                } else {
                    throw TokenizerError(file: file, "post_processor.single[\(i)] is neither a Sequence nor a SpecialToken")
                }
            }
            guard sawText else { throw TokenizerError(file: file, "post_processor.single has no $A sequence") }
            return (prefix, suffix)
        default:
            throw TokenizerError(file: file, "unsupported post_processor \"\(type)\" (Loom reads ByteLevel and TemplateProcessing)")
        }
    }


    /// Accepts `ByteLevel(use_regex: true)` (GPT-2), `Sequence[Digits(individual_digits),
    /// ByteLevel(use_regex: true)]` (SmolLM), or a `Sequence` of a `Split` on one of the
    /// patterns Loom implements followed by `ByteLevel(use_regex: false)`.
    static func parsePreTokenizer(_ raw: Any?, file: String) throws -> (PreTokenizerPattern, Bool) {
        let unsupported = "unsupported pre_tokenizer: Loom reads byte-level BPE whose pre-tokenizer is ByteLevel (GPT-2 regex), Sequence[Digits(individual_digits), ByteLevel] or Sequence[Split(GPT-2, Llama 3, Qwen2 or Loom regex, Isolated), ByteLevel(use_regex: false)]"
        guard let spec = raw as? [String: Any], let type = spec["type"] as? String else {
            throw TokenizerError(file: file, isNull(raw) ? "missing pre_tokenizer (not a byte-level BPE tokenizer)" : unsupported)
        }
        if type == "ByteLevel" {
            guard bool(spec["use_regex"], default: true) else { throw TokenizerError(file: file, unsupported) }
            return (.gpt2, bool(spec["add_prefix_space"], default: false))
        }
        guard type == "Sequence", let steps = spec["pretokenizers"] as? [[String: Any]] else { throw TokenizerError(file: file, unsupported) }
        if steps.count == 1, steps[0]["type"] as? String == "ByteLevel" { return try parsePreTokenizer(steps[0], file: file) }
        if steps.count == 2, steps[0]["type"] as? String == "Digits", bool(steps[0]["individual_digits"], default: false),
           steps[1]["type"] as? String == "ByteLevel", bool(steps[1]["use_regex"], default: true) {
            return (.smollm, bool(steps[1]["add_prefix_space"], default: false))
        }
        guard steps.count == 2, steps[0]["type"] as? String == "Split", steps[1]["type"] as? String == "ByteLevel",
              !bool(steps[1]["use_regex"], default: true),
              (steps[0]["behavior"] as? String) == "Isolated", !bool(steps[0]["invert"], default: false),
              let regex = (steps[0]["pattern"] as? [String: Any])?["Regex"] as? String
        else { throw TokenizerError(file: file, unsupported) }
        let prefix = bool(steps[1]["add_prefix_space"], default: false)
        switch regex {
        case PreTokenizerPattern.gpt2Regex: return (.gpt2, prefix)
        case PreTokenizerPattern.loomRegex: return (.loom, prefix)
        case PreTokenizerPattern.llama3Regex: return (.llama3, prefix)
        case PreTokenizerPattern.qwen2Regex: return (.qwen2, prefix)
        default: throw TokenizerError(file: file, "unsupported pre_tokenizer Split regex \(regex.debugDescription) (Loom implements the GPT-2, Llama 3, Qwen2 and Loom patterns by hand)")
        }
    }

    /// A token field of tokenizer_config.json: a string, or an AddedToken object with "content".
    static func tokenField(_ value: Any?) -> String? {
        if let string = value as? String { return string }
        return (value as? [String: Any])?["content"] as? String
    }

    static func applyConfig(_ data: Data, file: String, to parts: inout TokenizerParts) throws {
        let root = try object(data, file: file)
        parts.eosToken = tokenField(root["eos_token"])
        parts.bosToken = tokenField(root["bos_token"])
        parts.padToken = tokenField(root["pad_token"])
        parts.unknownToken = tokenField(root["unk_token"])
        parts.addBOSToken = bool(root["add_bos_token"], default: false)
        parts.modelMaxLength = int(root["model_max_length"])
        if let template = root["chat_template"] as? String {
            parts.chatTemplateJinja = template
        } else if let named = root["chat_template"] as? [[String: Any]] {
            let chosen = named.first { $0["name"] as? String == "default" } ?? named.first
            parts.chatTemplateJinja = chosen?["template"] as? String
        }
    }
}
