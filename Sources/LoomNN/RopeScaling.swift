import Foundation

/// The RoPE frequency scaling a checkpoint was trained with: Hugging Face's `rope_scaling`
/// (`rope_parameters` in transformers 5). Loom computes the same inverse frequencies as
/// transformers for the kinds it implements and refuses the others by name, because a model
/// run with frequencies other than its own still produces text, only worse.
///
/// Plain RoPE rotates the pair i of every head (i < headDim/2) by the angle
/// position · θ^(−2i/headDim). A scaling changes only these per-pair frequencies:
/// - `linear` (position interpolation): every frequency divided by `factor`.
/// - `llama3` (Llama 3.1 and later): with L = `originalMaxPositions` and the pair's wavelength
///   λ = 2π / frequency, pairs with λ < L / `highFrequencyFactor` keep their frequency, pairs
///   with λ > L / `lowFrequencyFactor` have it divided by `factor`, and in between
///   s = (L/λ − lowFrequencyFactor) / (highFrequencyFactor − lowFrequencyFactor) blends the two:
///   (1 − s) · frequency / factor + s · frequency.
/// Neither changes the attention scale.
public enum RopeScaling: Equatable, Sendable {
    case linear(factor: Double)
    case llama3(factor: Double, lowFrequencyFactor: Double, highFrequencyFactor: Double, originalMaxPositions: Int)

    /// The kinds Loom implements, by their Hugging Face `rope_type`.
    public static let supportedTypes = ["default", "linear", "llama3"]

    /// The JSON object as both transformers versions write it (`type` is the pre-4.45 name of
    /// `rope_type`; `rope_theta` appears only inside transformers 5's `rope_parameters`).
    struct Fields: Codable, Equatable {
        var rope_type: String?
        var type: String?
        var factor: Double?
        var low_freq_factor: Double?
        var high_freq_factor: Double?
        var original_max_position_embeddings: Int?
        var rope_theta: Double?

        var kind: String? { rope_type ?? type }
    }

    /// The scaling that `fields` (the object under `key` in config.json) describe: nil for
    /// plain RoPE; an error naming the field for a kind Loom does not implement or a value
    /// that is missing or out of range.
    static func parse(_ fields: Fields, key: String) throws -> RopeScaling? {
        func required<T>(_ value: T?, _ name: String) throws -> T {
            guard let value else { throw ConfigurationError("\(key).\(name) is missing (needed for rope_type \"\(fields.kind ?? "")\")") }
            return value
        }
        let scaling: RopeScaling
        switch fields.kind ?? "default" {
        case "default":
            return nil
        case "linear":
            scaling = .linear(factor: try required(fields.factor, "factor"))
        case "llama3":
            scaling = .llama3(factor: try required(fields.factor, "factor"),
                              lowFrequencyFactor: try required(fields.low_freq_factor, "low_freq_factor"),
                              highFrequencyFactor: try required(fields.high_freq_factor, "high_freq_factor"),
                              originalMaxPositions: try required(fields.original_max_position_embeddings, "original_max_position_embeddings"))
        case let other:
            throw ConfigurationError("\(key).rope_type \"\(other)\" is not supported (Loom implements \(supportedTypes.map { "\"\($0)\"" }.joined(separator: ", ")) RoPE)")
        }
        do { try scaling.validate() } catch let error as ConfigurationError { throw ConfigurationError("\(key): \(error.message)") }
        return scaling
    }

    /// Throws when a value would make the frequencies meaningless (zero, negative, non-finite,
    /// or an empty or inverted llama3 band).
    public func validate() throws {
        func positive(_ value: Double, _ name: String) throws {
            guard value.isFinite && value > 0 else { throw ConfigurationError("\(name) must be a positive number, got \(value)") }
        }
        switch self {
        case .linear(let factor):
            try positive(factor, "factor")
        case .llama3(let factor, let low, let high, let original):
            try positive(factor, "factor")
            try positive(low, "low_freq_factor")
            try positive(high, "high_freq_factor")
            guard high > low else {
                throw ConfigurationError("high_freq_factor (\(high)) must be greater than low_freq_factor (\(low))")
            }
            guard original > 0 && original <= LlamaConfiguration.Limits.maxPositionEmbeddings else {
                throw ConfigurationError("original_max_position_embeddings must be between 1 and \(LlamaConfiguration.Limits.maxPositionEmbeddings), got \(original)")
            }
        }
    }

    /// The `rope_scaling` object Loom writes (read by transformers 4.45+ and 5).
    var fields: Fields {
        switch self {
        case .linear(let factor):
            return Fields(rope_type: "linear", factor: factor)
        case .llama3(let factor, let low, let high, let original):
            return Fields(rope_type: "llama3", factor: factor, low_freq_factor: low, high_freq_factor: high,
                          original_max_position_embeddings: original)
        }
    }

    /// The scaled frequency of a pair whose plain frequency is `frequency`.
    public func scale(_ frequency: Double) -> Double {
        switch self {
        case .linear(let factor):
            return frequency / factor
        case .llama3(let factor, let low, let high, let original):
            let wavelength = 2 * Double.pi / frequency
            let longest = Double(original) / low, shortest = Double(original) / high
            if wavelength < shortest { return frequency }
            if wavelength > longest { return frequency / factor }
            let s = (Double(original) / wavelength - low) / (high - low)
            return (1 - s) * frequency / factor + s * frequency
        }
    }
}

extension LlamaConfiguration {
    /// Plain RoPE's frequency of each rotary pair (headDim/2 of them): θ^(−2i/headDim).
    public var plainRotaryFrequencies: [Double] {
        RotaryTable.plainFrequencies(headDim: headDim, theta: ropeTheta)
    }

    /// The frequency of each rotary pair, scaled by `ropeScaling`, in float32.
    public var rotaryInverseFrequencies: [Float] {
        plainRotaryFrequencies.map { Float(ropeScaling?.scale($0) ?? $0) }
    }
}
