/// Supervised fine-tuning: next-token cross-entropy on the assistant's tokens only.
///
/// A chat example is rendered through the chat template into one token sequence; the prompt,
/// system and user turns are context, and only the assistant's replies are learned. That is a
/// mask on the targets: position t predicts token t+1, and counts only when token t+1 belongs to
/// an assistant turn. Masked targets are `ignoredTarget` (-100, PyTorch's `ignore_index`), so the
/// loss is the mean over assistant tokens of the whole batch, as TRL's `SFTTrainer` with
/// `assistant_only_loss=True` (and `completion_only_loss` for prompt/completion data).
///
///     let targets = assistantOnlyTargets(tokens: tokens, assistantMask: isAssistant, sequenceLength: 512)
///     let loss = sftLoss(logits: model.logits(tokens), targets: targets)
import Foundation
import LoomNN
import LoomTensor

/// Mean cross-entropy of `logits` (`[rows, vocab]`) over rows whose target is not `ignoredTarget`.
/// With no counted row the loss is 0 (PyTorch gives NaN).
public func sftLoss(logits: Tensor, targets: [Int32]) -> Tensor {
    crossEntropy(logits: logits, targets: targets)
}

/// The same loss from the model, computing logits only for the rows that have a target. The
/// vocabulary projection and its cross-entropy are a large part of a step when the vocabulary is
/// large and the answers short (SmolLM2: 49,152 entries against a few answer tokens in a
/// 60-token chat example); the prompt's and the padding's rows contribute nothing to the loss,
/// so they are left out before that projection instead of being masked after it. The loss and
/// gradients are those of `sftLoss(logits: model.logits(tokens: …), targets:)`.
public func sftLoss(model: LlamaModel, tokens: [Int32], targets: [Int32], batch: Int, sequence: Int) -> Tensor {
    precondition(tokens.count == targets.count, "sftLoss: \(tokens.count) tokens, \(targets.count) targets")
    let counted = targets.indices.filter { targets[$0] != ignoredTarget }
    let hidden = model.hiddenStates(tokens: tokens, batch: batch, sequence: sequence)
    if counted.isEmpty || counted.count == targets.count {
        return sftLoss(logits: model.logits(hidden: hidden), targets: targets)
    }
    return sftLoss(logits: model.logits(hidden: gatherRows(hidden, indices: counted)), targets: counted.map { targets[$0] })
}

/// Next-token targets that count only assistant tokens.
///
/// `tokens` holds one or more sequences of `sequenceLength` tokens back to back (padding included);
/// `assistantMask[i]` says whether `tokens[i]` was written by the assistant (and is not padding).
/// The target of position i is `tokens[i + 1]` when that token is an assistant token of the same
/// sequence, otherwise `ignoredTarget`; the last position of every sequence has no target.
public func assistantOnlyTargets(tokens: [Int32], assistantMask: [Bool], sequenceLength: Int? = nil) -> [Int32] {
    precondition(tokens.count == assistantMask.count,
                 "assistantOnlyTargets: \(tokens.count) tokens, \(assistantMask.count) mask entries")
    let length = sequenceLength ?? tokens.count
    precondition(length > 0 && tokens.count % length == 0,
                 "assistantOnlyTargets: \(tokens.count) tokens are not whole sequences of \(length)")
    var targets = [Int32](repeating: ignoredTarget, count: tokens.count)
    for i in tokens.indices where (i + 1) % length != 0 && assistantMask[i + 1] {
        targets[i] = tokens[i + 1]
    }
    return targets
}
