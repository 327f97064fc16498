import ArgumentParser
import LoomInference
import LoomNN
import LoomTensor
import LoomTrain

// The enum-like flags. As `ExpressibleByArgument` enums, `--help` lists their values and a wrong
// value fails at parse time with an error that names the flag and the allowed values
// ("The value 'x' is invalid for '--loss <loss>'. Please provide one of 'sigmoid' and 'ipo'.").

extension DPOKind: ExpressibleByArgument {}
extension RankingPairs: ExpressibleByArgument {}
extension GRPORewardSource: ExpressibleByArgument {}
extension MatrixPrecision: ExpressibleByArgument {}

/// `--precision bf16` is refused before anything is read or written on a CPU that cannot run
/// bf16 products (and without `LOOM_BF16_EMULATION=1`).
func validatePrecision(_ precision: MatrixPrecision) throws {
    guard precision == .bf16 else { return }
    if case .failure(let error) = BF16Implementation.current { throw ValidationError(error.message) }
}

/// `loom grpo --aggregation`: how per-token losses become one number.
enum GRPOAggregationFlag: String, CaseIterable, ExpressibleByArgument {
    case token, sequence
    case drGRPO = "dr-grpo"

    /// The loss's aggregation; Dr. GRPO normalises by the longest possible completion.
    func aggregation(maxNewTokens: Int) -> GRPOAggregation {
        switch self {
        case .token: return .token
        case .sequence: return .sequence
        case .drGRPO: return .fixedLength(maxNewTokens + 1)
        }
    }
}

/// `loom export gguf --type`: the GGUF type of the weight matrices.
enum GGUFExportType: String, CaseIterable, ExpressibleByArgument {
    case f32, f16, q8_0, q4_0, q4_1

    var ggmlType: GGMLType {
        switch self {
        case .f32: return .f32
        case .f16: return .f16
        case .q8_0: return .q8_0
        case .q4_0: return .q4_0
        case .q4_1: return .q4_1
        }
    }
}

/// `loom quantize --type`: llama.cpp's block formats, by their lower-case names.
enum QuantizeType: String, CaseIterable, ExpressibleByArgument {
    case q8_0, q4_0, q4_1

    var blocks: BlockQuantization {
        switch self {
        case .q8_0: return .q8_0
        case .q4_0: return .q4_0
        case .q4_1: return .q4_1
        }
    }
}

/// `loom import gguf --dtype`: how the written model stores the weights.
enum ImportWeightType: String, CaseIterable, ExpressibleByArgument {
    /// Every weight dequantized to float32 (model.safetensors).
    case f32
    /// Q8_0, Q4_0 and Q4_1 matrices stay quantized (model.gguf).
    case keep
}
