import XCTest
import Foundation
@testable import LoomNN

/// config.json fields that change what the network computes: each is applied as transformers
/// applies it, or refused with the field's name, never silently ignored.
final class ConfigurationTests: XCTestCase {
    /// A tiny Llama config.json with `extra` fields merged in.
    func decode(_ extra: [String: Any]) throws -> LlamaConfiguration {
        var object: [String: Any] = ["vocab_size": 32, "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 1,
                                     "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 64]
        object.merge(extra) { $1 }
        return try JSONDecoder().decode(LlamaConfiguration.self, from: JSONSerialization.data(withJSONObject: object))
    }

    func assertRefused(_ extra: [String: Any], mentioning parts: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try decode(extra), file: file, line: line) { error in
            let message = "\(error)"
            for part in parts { XCTAssertTrue(message.contains(part), "\"\(message)\" should mention \(part)", file: file, line: line) }
        }
    }

    func testRopeScalingInEveryTransformersSpelling() throws {
        // transformers 4.45+: rope_scaling with rope_type; before: with type; 5: rope_parameters.
        XCTAssertEqual(try decode(["rope_scaling": ["rope_type": "linear", "factor": 2.0]]).ropeScaling, .linear(factor: 2))
        XCTAssertEqual(try decode(["rope_scaling": ["type": "linear", "factor": 4.0]]).ropeScaling, .linear(factor: 4))
        let llama3: [String: Any] = ["rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                     "original_max_position_embeddings": 8192]
        let expected = RopeScaling.llama3(factor: 32, lowFrequencyFactor: 1, highFrequencyFactor: 4, originalMaxPositions: 8192)
        XCTAssertEqual(try decode(["rope_scaling": llama3, "rope_theta": 500000.0]).ropeScaling, expected)
        let v5 = try decode(["rope_parameters": llama3.merging(["rope_theta": 500000.0]) { $1 }])
        XCTAssertEqual(v5.ropeScaling, expected)
        XCTAssertEqual(v5.ropeTheta, 500000)
        // Plain RoPE, spelled out or null.
        XCTAssertNil(try decode(["rope_parameters": ["rope_type": "default", "rope_theta": 10000.0]]).ropeScaling)
        XCTAssertNil(try decode(["rope_scaling": NSNull()]).ropeScaling)
    }

    func testLlama3FrequenciesFollowTheDefinition() throws {
        // head_dim 8 with θ = 10000: frequencies 1, 0.1, 0.01, 0.001; wavelengths 2π, 62.8, 628, 6283.
        // L = 64, low 1, high 4: wavelengths under 16 keep their frequency, over 64 are divided by 8,
        // and 62.8 lies between: s = (64/62.8 − 1)/3.
        var c = try decode(["hidden_size": 16, "num_attention_heads": 2])
        c.ropeScaling = .llama3(factor: 8, lowFrequencyFactor: 1, highFrequencyFactor: 4, originalMaxPositions: 64)
        let f = c.rotaryInverseFrequencies.map(Double.init)
        let s = (64 / (2 * Double.pi / 0.1) - 1) / 3
        XCTAssertEqual(f[0], 1, accuracy: 1e-7)
        XCTAssertEqual(f[1], (1 - s) * 0.1 / 8 + s * 0.1, accuracy: 1e-7)
        XCTAssertEqual(f[2], 0.01 / 8, accuracy: 1e-9)
        XCTAssertEqual(f[3], 0.001 / 8, accuracy: 1e-10)
        c.ropeScaling = .linear(factor: 2)
        XCTAssertEqual(c.rotaryInverseFrequencies.map(Double.init)[1], 0.05, accuracy: 1e-8)
    }

    func testUnimplementedRopeScalingIsRefused() {
        assertRefused(["rope_scaling": ["rope_type": "yarn", "factor": 4.0]], mentioning: ["rope_scaling.rope_type", "yarn", "llama3"])
        assertRefused(["rope_scaling": ["type": "dynamic", "factor": 2.0]], mentioning: ["rope_scaling.rope_type", "dynamic"])
        assertRefused(["rope_parameters": ["rope_type": "longrope", "rope_theta": 10000.0]], mentioning: ["rope_parameters.rope_type", "longrope"])
        assertRefused(["rope_scaling": ["rope_type": "linear"]], mentioning: ["rope_scaling.factor", "missing"])
        assertRefused(["rope_scaling": ["rope_type": "linear", "factor": 0.0]], mentioning: ["rope_scaling", "factor", "positive"])
        assertRefused(["rope_scaling": ["rope_type": "llama3", "factor": 8.0, "low_freq_factor": 4.0, "high_freq_factor": 4.0,
                                        "original_max_position_embeddings": 8192]], mentioning: ["high_freq_factor", "low_freq_factor"])
        assertRefused(["rope_scaling": ["rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0]],
                      mentioning: ["original_max_position_embeddings", "missing"])
        assertRefused(["rope_scaling": ["rope_type": "linear", "factor": "2"]], mentioning: ["rope_scaling", "factor"])
    }

    func testOtherArchitecturesAreRefusedByModelType() throws {
        assertRefused(["model_type": "qwen2"], mentioning: ["model_type", "qwen2", "llama"])
        assertRefused(["model_type": "granite"], mentioning: ["model_type", "granite"])
        // Mistral is Llama's network unless its sliding window is shorter than the context.
        XCTAssertNoThrow(try decode(["model_type": "mistral", "sliding_window": NSNull()]))
        XCTAssertNoThrow(try decode(["model_type": "mistral", "sliding_window": 64]))
        assertRefused(["model_type": "mistral", "sliding_window": 16], mentioning: ["sliding_window 16", "max_position_embeddings 64"])
        XCTAssertNoThrow(try decode(["model_type": "llama"]))
    }

    func testEndOfSequenceListIsKeptWhole() throws {
        let c = try decode(["eos_token_id": [5, 7, 5, 9]])
        XCTAssertEqual(c.eosTokenID, 5)
        XCTAssertEqual(c.endTokenIDs, [5, 7, 9])
        // Written back as the same list (and a single id as a number).
        let again = try JSONDecoder().decode(LlamaConfiguration.self, from: JSONEncoder().encode(c))
        XCTAssertEqual(again.endTokenIDs, [5, 7, 9])
        let written = try JSONSerialization.jsonObject(with: JSONEncoder().encode(try decode(["eos_token_id": 3]))) as! [String: Any]
        XCTAssertEqual(written["eos_token_id"] as? Int, 3)
        XCTAssertEqual(try decode(["eos_token_id": [Int]()]).endTokenIDs, [])
    }
}
