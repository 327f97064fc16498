import Foundation
import XCTest
@testable import LoomServe
import LoomInference
import LoomNN
import LoomTensor
import LoomTokenizer

/// A tiny random chat model (a trained tokenizer with ChatML markers) shared by the tests.
enum TinyChatModel {
    static let texts = [
        "The quick brown fox jumps over the lazy dog.", "A stitch in time saves nine.",
        "{\"name\": \"loom\", \"values\": [1, 2.5, true, null]}", "print(\"hello, world\")",
        "Question: what is 2 + 3? Answer: 5", "天下大势，分久必合，合久必分。",
    ]
    static let shared: (model: LlamaModel, tokenizer: ByteLevelBPETokenizer) = {
        let tokenizer = ByteLevelBPETokenizer.train(texts: texts, vocabSize: 400)
        let configuration = LlamaConfiguration(vocabularySize: tokenizer.vocabularySize + 3, hiddenSize: 64, intermediateSize: 96,
                                               layerCount: 2, headCount: 4, kvHeadCount: 2, maxPositionEmbeddings: 256,
                                               rmsNormEps: 1e-5, ropeTheta: 10000, tieWordEmbeddings: false,
                                               eosTokenID: tokenizer.endOfTextID)
        let model = LlamaModel(configuration: configuration)
        model.initializeWeights(seed: 11, standardDeviation: 0.2)
        return (model, tokenizer)
    }()
}

final class RowInvariantTests: XCTestCase {
    /// Every row of a product over m rows equals, bit for bit, the same row computed alone,
    /// for row counts that exercise every tile shape, and is close to BLAS.
    func testRowsDoNotDependOnTheBatch() {
        var rng = SeededRandom(seed: 3)
        for (n, k) in [(37, 64), (50, 576), (9, 100)] {
            let w = Tensor.randomNormal([n, k], rng: &rng)
            let x = Tensor.randomNormal([11, k], rng: &rng)
            let alone = Tensor(zeros: [11, n])
            for r in 0..<11 {
                RowInvariant.gemmNT(m: 1, n: n, k: k, x: x.data + r * k, ldx: k, w: w.data, ldw: k, y: alone.data + r * n, ldy: n, accumulate: false)
            }
            // Rows read as one stream (weights from memory) or in tiles: the same bits too.
            for m in [1, 2, 4, 5, 8, 11] {
                for streamed in [false, true] {
                    let together = Tensor(zeros: [m, n])
                    RowInvariant.gemmNT(m: m, n: n, k: k, x: x.data, ldx: k, w: w.data, ldw: k, y: together.data, ldy: n,
                                        accumulate: false, streamed: streamed)
                    for i in 0..<(m * n) {
                        XCTAssertEqual(together.data[i].bitPattern, alone.data[i].bitPattern,
                                       "m=\(m) n=\(n) k=\(k) streamed=\(streamed) element \(i)")
                    }
                }
            }
            let reference = linear(x, w)
            for i in 0..<(11 * n) { XCTAssertEqual(alone.data[i], reference.data[i], accuracy: 1e-3 * Float(k).squareRoot()) }
            // Accumulating adds to what is there, in tiles and streamed.
            for streamed in [false, true] {
                let base = Tensor(zeros: [11, n])
                for i in 0..<(11 * n) { base.data[i] = 1 }
                rowInvariantLinearAccumulate(x, w, into: base, streamed: streamed)
                for i in 0..<(11 * n) {
                    XCTAssertEqual(base.data[i], 1 + alone.data[i], accuracy: 1e-4 * max(1, abs(alone.data[i])), "streamed=\(streamed)")
                }
            }
        }
    }

    /// The AVX-512 kernel (two rows per register) gives the AVX2 kernel's bits for every row
    /// count (8-row tiles and the AVX2 tiles after them), tail length, column range and mode.
    func testAVX512EqualsAVX2BitForBit() throws {
        let cpu = CPUFeatures.current
        guard KernelLevel.widest(for: cpu) >= .avx512 else {
            throw XCTSkip("no AVX-512 on this CPU (\(cpu.modelName)); scripts/test.sh runs these kernels emulated (Tests/Emulated)")
        }
        var rng = SeededRandom(seed: 5)
        for (n, k) in [(37, 64), (10, 77), (50, 576)] {
            let w = Tensor.randomNormal([n, k], rng: &rng)
            let x = Tensor.randomNormal([19, k], rng: &rng)
            for m in 1...19 {
                for (accumulate, streamed) in [(false, false), (true, false), (false, true)] {
                    var results: [[UInt32]] = []
                    for level in [KernelLevel.avx2, .avx512] {
                        let y = Tensor(zeros: [m, n])
                        for i in 0..<(m * n) { y.data[i] = Float(i % 7) }
                        RowInvariant.gemmNT(m: m, n: n, k: k, x: x.data, ldx: k, w: w.data, ldw: k, y: y.data, ldy: n,
                                            accumulate: accumulate, streamed: streamed, level: level)
                        results.append(y.scalars.map(\.bitPattern))
                    }
                    XCTAssertEqual(results[0], results[1], "m=\(m) n=\(n) k=\(k) accumulate=\(accumulate) streamed=\(streamed)")
                }
            }
        }
    }

    /// A sequence's logits from the batch-invariant forward pass are identical alone and among
    /// others (of other lengths, prefilling or decoding), and agree with the BLAS forward pass.
    func testForwardIsBatchInvariant() {
        let (model, _) = TinyChatModel.shared
        let prompt: [Int32] = [5, 17, 99, 3, 250, 41, 8]
        let aloneCache = KVCache(model: model, batch: 1, capacity: 64)
        let alone = model.forward(newTokens: [prompt], cache: aloneCache, batchInvariant: true)
        let others: [[Int32]] = [[1, 2, 3], [], [7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7], [300]]
        let cache = KVCache(model: model, batch: 5, capacity: 64)
        let batched = model.forward(newTokens: others.prefix(2) + [prompt] + others.suffix(2), cache: cache, batchInvariant: true)
        let vocabulary = model.configuration.vocabularySize
        // Rows: sequences 0, 2 (ours), 3, 4 — ours is the second row.
        for v in 0..<vocabulary { XCTAssertEqual(batched.data[vocabulary + v].bitPattern, alone.data[v].bitPattern) }
        let blas = model.forward(newTokens: [prompt], cache: KVCache(model: model, batch: 1, capacity: 64))
        for v in 0..<vocabulary { XCTAssertEqual(blas.data[v], alone.data[v], accuracy: 1e-4) }
        // A decoding step after a prefix computed in pieces equals the step after one prefill.
        let pieces = KVCache(model: model, batch: 1, capacity: 64)
        _ = model.forward(newTokens: [Array(prompt.prefix(3))], cache: pieces, batchInvariant: true)
        let rest = model.forward(newTokens: [Array(prompt.dropFirst(3))], cache: pieces, batchInvariant: true)
        for v in 0..<vocabulary { XCTAssertEqual(rest.data[v].bitPattern, alone.data[v].bitPattern) }
    }
}

final class JSONObjectConstraintTests: XCTestCase {
    func testAcceptsJSONObjectsAndRejectsTheRest() {
        for text in [#"{}"#, #"{"a":1}"#, #"{"a":[1,-2.5e+3,true,false,null,{"b":"c\"\\\u00e9"}]}"#, "{\"ü\":\"天\"}", #"{"x":0.5E-2}"#, "{\n  \"a\": [1, 2 ],\n  \"b\":{ }\n}"] {
            var c = JSONObjectConstraint()
            XCTAssertTrue(c.advance(Array(text.utf8)), text)
            XCTAssertTrue(c.isComplete, text)
        }
        for text in [#"[1]"#, #"{"a"}"#, #"{"a":01}"#, #"{"a":1,}"#, #"{a:1}"#, #"{"a":tru}"#, "{\"a\":\"\u{1}\"}", #"{"a":1}}"#, #" {"a":1}"#, #"{"a":1} "#, "{\"a\":1" + String(repeating: " ", count: 60) + "}", #"{"a":"\x"}"#] {
            var c = JSONObjectConstraint()
            let accepted = c.advance(Array(text.utf8)) && c.isComplete
            XCTAssertFalse(accepted, text)
        }
    }

    /// Random walks through allowed bytes, closed with `closingBytes` at a random point,
    /// always give text that Foundation parses as a JSON object.
    func testClosingAlwaysGivesValidJSON() throws {
        var rng = SeededRandom(seed: 9)
        let alphabet = Array("{}[]\":,-0123456789.eE+truefalsn\\u aé\n".utf8)
        for _ in 0..<300 {
            var c = JSONObjectConstraint()
            var bytes: [UInt8] = []
            let length = Int(rng.next() % 40)
            var attempts = 0
            while bytes.count < length && !c.isComplete && attempts < 2000 {
                attempts += 1
                let b = alphabet[Int(rng.next() % UInt64(alphabet.count))]
                if c.allows([b]) { c.advance([b]); bytes.append(b) }
            }
            let closing = c.closingBytes
            XCTAssertTrue(c.allows(closing))
            let text = bytes + closing
            let object = try JSONSerialization.jsonObject(with: Data(text))
            XCTAssertTrue(object is [String: Any], String(decoding: text, as: UTF8.self))
        }
    }
}

final class JSONValueTests: XCTestCase {
    func testRoundTripAndErrors() throws {
        let text = #"{"a":[1,2.5,-3e-2,true,false,null],"b":"x\"y\\z\n\u00e9\ud83d\ude00","c":{}}"#
        let value = try JSONValue.parse(Array(text.utf8))
        XCTAssertEqual(value["b"], .string("x\"y\\z\né😀"))
        XCTAssertEqual(try JSONValue.parse(Array(value.serialized.utf8)), value)
        for bad in ["{", "{\"a\" 1}", "[1,]", "01", "\"abc", "{\"a\":1} x", "nul", "\"\u{1}\""] {
            XCTAssertThrowsError(try JSONValue.parse(Array(bad.utf8)), bad)
        }
        XCTAssertThrowsError(try JSONValue.parse(Array((String(repeating: "[", count: 100) + String(repeating: "]", count: 100)).utf8))) {
            XCTAssertTrue("\($0)".contains("nesting"))
        }
        for huge in ["1e309", "[-1e400]", "{\"max_tokens\":123456789e301}"] {
            XCTAssertThrowsError(try JSONValue.parse(Array(huge.utf8)), huge) { XCTAssertTrue("\($0)".contains("number out of range"), "\($0)") }
        }
        XCTAssertEqual(try JSONValue.parse(Array("1.7e308".utf8)), .number(1.7e308))
    }
}

final class EngineTests: XCTestCase {
    /// Runs specs through a fresh engine; returns each sequence's text, token count, finish
    /// reason and cached prompt tokens.
    func run(_ engine: InferenceEngine, _ specs: [SequenceSpec]) -> [(text: String, tokens: Int, reason: FinishReason, cached: Int)] {
        let lock = NSLock()
        nonisolated(unsafe) var results = [(text: String, tokens: Int, reason: FinishReason, cached: Int)](repeating: ("", 0, .length, 0), count: specs.count)
        let done = DispatchSemaphore(value: 0)
        _ = try! engine.submit(specs) { i, event in
            lock.lock()
            switch event {
            case .started(_, let cached): results[i].cached = cached
            case .text(let t, _): results[i].text += t
            case .finished(let r, let n): results[i].reason = r; results[i].tokens = n; done.signal()
            }
            lock.unlock()
        }
        for _ in specs { done.wait() }
        return results
    }

    func spec(_ prompt: String, seed: UInt64, maxTokens: Int = 24, temperature: Float = 0.9) -> SequenceSpec {
        let tokenizer = TinyChatModel.shared.tokenizer
        return SequenceSpec(prompt: tokenizer.encode(prompt).map(Int32.init), maxTokens: maxTokens,
                            sampling: SamplingParameters(temperature: temperature, topK: 50, topP: 0.95, seed: seed))
    }

    /// The acceptance test of continuous batching: a seeded request alone, and among 7 others
    /// that join at the same time, gives the same tokens.
    func testSameTokensAloneAndAmongOthers() {
        let (model, tokenizer) = TinyChatModel.shared
        let target = spec("The quick brown fox", seed: 42)
        let alone = run(InferenceEngine(model: model, tokenizer: tokenizer, slots: 8, context: 128, queueLimit: 16, metrics: ServerMetrics()).started(), [target])
        let others = (0..<7).map { spec(["A stitch", "print(", "Question: what", "天下"][$0 % 4] + String(repeating: " time", count: $0), seed: UInt64($0), maxTokens: 5 + 4 * $0) }
        let engine = InferenceEngine(model: model, tokenizer: tokenizer, slots: 8, context: 128, queueLimit: 16, metrics: ServerMetrics()).started()
        let together = run(engine, Array(others.prefix(3)) + [target] + Array(others.suffix(4)))
        XCTAssertEqual(together[3].text, alone[0].text)
        XCTAssertEqual(together[3].tokens, alone[0].tokens)
        XCTAssertGreaterThan(alone[0].tokens, 0)
        // With fewer slots than sequences the rest wait, and still give the same tokens.
        let queued = run(InferenceEngine(model: model, tokenizer: tokenizer, slots: 2, context: 128, queueLimit: 16, metrics: ServerMetrics()).started(),
                         Array(others.prefix(5)) + [target])
        XCTAssertEqual(queued[5].text, alone[0].text)
    }

    /// A second request that extends a finished one reuses its keys and values and answers
    /// exactly as without the cache.
    func testPromptCacheReusesPrefixExactly() {
        let (model, tokenizer) = TinyChatModel.shared
        let first = spec("Question: what is 2 + 3?", seed: 1, maxTokens: 6, temperature: 0)
        let second = spec("Question: what is 2 + 3? Answer: 5. And the quick brown fox", seed: 2, maxTokens: 12, temperature: 0)
        let engine = InferenceEngine(model: model, tokenizer: tokenizer, slots: 2, context: 128, queueLimit: 4, metrics: ServerMetrics()).started()
        _ = run(engine, [first])
        let cached = run(engine, [second])[0]
        XCTAssertEqual(cached.cached, first.prompt.count)
        let fresh = run(InferenceEngine(model: model, tokenizer: tokenizer, slots: 2, context: 128, queueLimit: 4, metrics: ServerMetrics()).started(), [second])[0]
        XCTAssertEqual(fresh.cached, 0)
        XCTAssertEqual(cached.text, fresh.text)
        XCTAssertTrue(engine.metrics.render().contains("loom_prompt_cached_tokens_total \(first.prompt.count)"))
    }

    func testStopStringsJSONModeAndLimits() throws {
        let (model, tokenizer) = TinyChatModel.shared
        let engine = InferenceEngine(model: model, tokenizer: tokenizer, slots: 4, context: 128, queueLimit: 1, metrics: ServerMetrics()).started()
        // The unconstrained answer, then the same with a stop string cut from its middle.
        let plain = run(engine, [spec("The lazy dog", seed: 5, maxTokens: 30, temperature: 0)])[0]
        let chars = Array(plain.text)
        if chars.count >= 6 {
            let stop = String(chars[3..<5])
            var s = spec("The lazy dog", seed: 5, maxTokens: 30, temperature: 0)
            s.stop = [stop]
            let stopped = run(engine, [s])[0]
            XCTAssertEqual(stopped.reason, .stop)
            XCTAssertFalse(stopped.text.contains(stop))
            XCTAssertTrue(plain.text.hasPrefix(stopped.text))
            XCTAssertEqual(stopped.text, String(plain.text[..<plain.text.range(of: stop)!.lowerBound]))
        }
        // JSON mode: whatever the random model wants, the answer is a JSON object, also when cut short.
        for (maxTokens, seed) in [(40, UInt64(1)), (2, 3)] + (0..<24).map({ (3 + $0, UInt64(10 + $0)) }) {
            var s = spec("{\"name\":", seed: seed, maxTokens: maxTokens, temperature: 1)
            s.jsonObject = true
            let answer = run(engine, [s])[0]
            XCTAssertLessThanOrEqual(answer.tokens, maxTokens)
            let object = try JSONSerialization.jsonObject(with: Data(answer.text.utf8))
            XCTAssertTrue(object is [String: Any], answer.text)
        }
        // The queue holds one sequence: a request of three is refused whole.
        XCTAssertThrowsError(try engine.submit((0..<3).map { _ in spec("x", seed: 0) }) { _, _ in }) {
            XCTAssertTrue("\($0)".contains("busy"))
        }
    }
}

final class EngineShutdownTests: XCTestCase {
    /// Draining ends a long running sequence and a waiting one at once, and refuses new ones.
    func testDrainEndsSequencesAndRefusesNewOnes() {
        let (model, tokenizer) = TinyChatModel.shared
        let engine = InferenceEngine(model: model, tokenizer: tokenizer, slots: 1, context: 256, queueLimit: 4, metrics: ServerMetrics()).started()
        let finished = DispatchSemaphore(value: 0)
        let started = DispatchSemaphore(value: 0)
        let spec = SequenceSpec(prompt: [5, 6, 7], maxTokens: 250, sampling: SamplingParameters(temperature: 1, seed: 1))
        nonisolated(unsafe) var reasons: [FinishReason] = []
        let lock = NSLock()
        _ = try! engine.submit([spec, spec]) { _, event in
            if case .started = event { started.signal() }
            if case .finished(let reason, _) = event { lock.lock(); reasons.append(reason); lock.unlock(); finished.signal() }
        }
        started.wait()
        engine.drain()
        XCTAssertEqual(finished.wait(timeout: .now() + 30), .success)
        XCTAssertEqual(finished.wait(timeout: .now() + 30), .success)
        XCTAssertEqual(reasons, [.stop, .stop])
        XCTAssertThrowsError(try engine.submit([spec]) { _, _ in }) { XCTAssertTrue("\($0)".contains("shutting down")) }
    }
}

extension InferenceEngine {
    func started() -> InferenceEngine { start(); return self }
}

final class OpenAIRequestTests: XCTestCase {
    /// A model whose chat template is not ChatML: chat requests get a 400 that says why (the
    /// server would otherwise prompt it in a format it was not trained on); completions still work.
    func testChatNeedsAChatMLTemplate() throws {
        let tokenizer = ByteLevelBPETokenizer.train(texts: TinyChatModel.texts, vocabSize: 300)
        tokenizer.chatTemplate.jinja = "{% for m in messages %}{{ '<start_of_turn>' + m['role'] + '\\n' + m['content'] + '<end_of_turn>\\n' }}{% endfor %}"
        let chat = try RequestReader(body: JSONValue.parse(Array(#"{"messages":[{"role":"user","content":"hi"}]}"#.utf8)), tokenizer: tokenizer, maxChoices: 4)
        XCTAssertThrowsError(try chat.chat(context: 64)) { error in
            let api = error as? APIError
            XCTAssertEqual(api?.status, 400)
            XCTAssertEqual(api?.param, "messages")
            XCTAssertTrue(api?.message.contains("it marks turns with <start_of_turn>") == true, "\(error)")
        }
        let completion = try RequestReader(body: JSONValue.parse(Array(#"{"prompt":"The quick"}"#.utf8)), tokenizer: tokenizer, maxChoices: 4)
        XCTAssertEqual(try completion.completion(context: 64, vocabulary: tokenizer.vocabularySize).prompts.count, 1)
    }
}
