import LoomNN

/// A padded batch of prompt + response sequences, laid out `[sequences, length]`.
/// Row s holds prompt s followed by response s; `targets` are next tokens on response
/// positions only (position t predicts t + 1), and `responseMask` is 1 on those positions.
public struct PromptResponseBatch {
    public let tokens: [Int32]
    public let targets: [Int32]
    public let responseMask: [Float]
    public let sequences: Int
    public let length: Int
    /// Index of each sequence's last token (for a reward score).
    public let lastTokenRows: [Int]
    /// Per sequence, the flat row index of the position that predicts each response token.
    public let responsePositions: [[Int]]

    public init(prompts: [[Int32]], responses: [[Int32]], padID: Int32, maxLength: Int) {
        precondition(prompts.count == responses.count)
        var rows: [[Int32]] = [], promptLengths: [Int] = []
        for (p, r) in zip(prompts, responses) {
            // Keep the whole response when possible; cut the prompt's beginning if too long.
            let keepResponse = Array(r.prefix(maxLength - 1))
            let keepPrompt = Array(p.suffix(max(1, maxLength - keepResponse.count)))
            rows.append(keepPrompt + keepResponse)
            promptLengths.append(keepPrompt.count)
        }
        let length = rows.map(\.count).max() ?? 1
        var tokens = [Int32](repeating: padID, count: rows.count * length)
        var targets = [Int32](repeating: ignoredTarget, count: rows.count * length)
        var mask = [Float](repeating: 0, count: rows.count * length)
        var last: [Int] = [], positions: [[Int]] = []
        for (s, row) in rows.enumerated() {
            for (t, id) in row.enumerated() { tokens[s * length + t] = id }
            var ps: [Int] = []
            for t in (promptLengths[s] - 1)..<(row.count - 1) {
                targets[s * length + t] = row[t + 1]
                mask[s * length + t] = 1
                ps.append(s * length + t)
            }
            positions.append(ps)
            last.append(s * length + row.count - 1)
        }
        self.tokens = tokens; self.targets = targets; responseMask = mask
        sequences = rows.count; self.length = length; lastTokenRows = last; responsePositions = positions
    }

    /// log π(response token) at every position (0 off the response): `[sequences·length]`.
    public func tokenLogProbs(_ model: LlamaModel) -> Tensor {
        logSoftmaxGather(logits: model.logits(tokens: tokens, batch: sequences, sequence: length), targets: targets)
    }

    /// Σ log π(response) per sequence, without gradients.
    public func sequenceLogProbs(_ model: LlamaModel) -> [Float] {
        let lp = withoutGradients { tokenLogProbs(model) }
        return (0..<sequences).map { s in responsePositions[s].reduce(0) { $0 + lp.data[$1] } }
    }

    /// Per-token log-probs per sequence (response positions only), without gradients.
    public func responseLogProbs(_ model: LlamaModel) -> [[Float]] {
        let lp = withoutGradients { tokenLogProbs(model) }
        return responsePositions.map { $0.map { lp.data[$0] } }
    }
}
