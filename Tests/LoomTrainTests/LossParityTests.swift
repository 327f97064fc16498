import XCTest
import Foundation
@testable import LoomTrain

/// Every alignment loss against PyTorch with TRL's definitions (Tests/Reference/make_loss_reference.py
/// writes Reference/losses/losses.safetensors): loss values, metrics and the gradients with respect to
/// the differentiable inputs.
///
/// Tolerance: |loom − torch| ≤ 1e-5 · max(1, |torch|) elementwise, i.e. absolute 1e-5 for values up to
/// 1 in magnitude and relative 1e-5 above (both sides are float32; the references reduce in a
/// different order, so agreement is to a few ulps, not bitwise).
final class LossParityTests: XCTestCase {
    static let referenceURL = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Reference/losses/losses.safetensors")
    static let tolerance: Float = 1e-5

    nonisolated(unsafe) static var cache: [String: Tensor]?

    func reference() throws -> [String: Tensor] {
        if let cached = Self.cache { return cached }
        let loaded = try SafeTensors.load(Self.referenceURL)
        Self.cache = loaded
        return loaded
    }

    func values(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> [Float] {
        guard let t = try reference()[name] else {
            XCTFail("reference has no tensor \(name)", file: file, line: line)
            throw CocoaError(.fileReadCorruptFile)
        }
        return t.scalars
    }

    func scalar(_ name: String) throws -> Float { try values(name)[0] }

    /// A fresh copy of a reference tensor (so gradients never accumulate across tests).
    func input(_ name: String, requiresGrad: Bool = true) throws -> Tensor {
        let t = try reference()[name]!
        return Tensor(shape: t.shape, values: t.scalars, requiresGrad: requiresGrad)
    }

    func assertClose(_ actual: [Float], _ expected: [Float], _ what: String,
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.count, expected.count, "\(what): element count", file: file, line: line)
        var worst: Float = 0, worstIndex = 0
        for i in 0..<min(actual.count, expected.count) {
            let excess = abs(actual[i] - expected[i]) / max(1, abs(expected[i]))
            if !(excess <= worst) { worst = excess; worstIndex = i }   // NaN counts as worst
        }
        if !(worst <= Self.tolerance) {
            XCTFail("\(what): element \(worstIndex) is \(actual[worstIndex]), torch \(expected[worstIndex]) (scaled error \(worst))",
                    file: file, line: line)
        }
    }

    func assertClose(_ actual: Float, _ expected: Float, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        assertClose([actual], [expected], what, file: file, line: line)
    }

    func gradient(_ t: Tensor) -> [Float] { t.gradScalars ?? [Float](repeating: 0, count: t.count) }

    /// Records `body` on a fresh tape and runs backward from the loss it returns.
    @discardableResult
    func backward(_ body: () -> Tensor) -> Tensor {
        let tape = Tape()
        let loss = tape.record(body)
        tape.backward(from: loss)
        return loss
    }

    // MARK: Masked reductions and SFT

    func testMaskedMeanMatchesTRL() throws {
        let x = try input("masked.x")
        let mask = try values("masked.mask")
        let loss = backward { maskedMean(x, mask: mask) }
        assertClose(loss.item, try scalar("masked.mean"), "masked mean")
        assertClose(gradient(x), try values("masked.grad.x"), "masked mean gradient")
        assertClose(maskedMean(x.scalars, mask: mask), try scalar("masked.mean"), "masked mean of plain values")
    }

    func testSFTLossMatchesTorchCrossEntropy() throws {
        let logits = try input("sft.logits")
        let targets = try values("sft.targets").map { Int32($0) }
        let loss = backward { sftLoss(logits: logits, targets: targets) }
        assertClose(loss.item, try scalar("sft.loss"), "SFT loss")
        assertClose(gradient(logits), try values("sft.grad.logits"), "SFT gradient")
    }

    func testAssistantOnlyTargetsCountOnlyAssistantTokensOfTheSameSequence() {
        // Two sequences of 4: [system, user, asst, asst] and [user, asst, asst, pad].
        let tokens: [Int32] = [10, 11, 12, 13, 20, 21, 22, 0]
        let assistant = [false, false, true, true, false, true, true, false]
        let targets = assistantOnlyTargets(tokens: tokens, assistantMask: assistant, sequenceLength: 4)
        let i = ignoredTarget
        XCTAssertEqual(targets, [i, 12, 13, i, 21, 22, i, i])
    }

    // MARK: Reward model

    func testPairwiseRewardLossMatchesTRLRewardTrainer() throws {
        for (name, withExtras) in [("reward.plain", false), ("reward.margin_center", true)] {
            let chosen = try input("reward.chosen"), rejected = try input("reward.rejected")
            let margin = withExtras ? try values("reward.margin") : nil
            let coefficient: Float = withExtras ? try scalar("reward.margin_center.center_coef") : 0
            let loss = backward {
                pairwiseRewardLoss(chosen: chosen, rejected: rejected, margin: margin, centeringCoefficient: coefficient)
            }
            assertClose(loss.item, try scalar("\(name).loss"), "\(name) loss")
            assertClose(gradient(chosen), try values("\(name).grad.chosen"), "\(name) chosen gradient")
            assertClose(gradient(rejected), try values("\(name).grad.rejected"), "\(name) rejected gradient")
        }
        let c = try values("reward.chosen"), r = try values("reward.rejected")
        assertClose(pairwiseAccuracy(chosen: c, rejected: r), try scalar("reward.accuracy"), "accuracy")
        assertClose(meanRewardMargin(chosen: c, rejected: r), try scalar("reward.mean_margin"), "mean margin")
    }

    func rankingGroups() throws -> [[Int]] {
        let flat = try values("ranking.group_indices").map { Int($0) }
        var groups: [[Int]] = [], start = 0
        for size in try values("ranking.group_sizes").map({ Int($0) }) {
            groups.append(Array(flat[start..<(start + size)]))
            start += size
        }
        return groups
    }

    func testRankingLossMatchesInstructGPTDefinition() throws {
        let groups = try rankingGroups()
        XCTAssertEqual(groups.map(\.count), [4, 3])
        let scores = try input("ranking.scores")
        let loss = backward { rankingRewardLoss(scores: scores, groups: groups) }
        assertClose(loss.item, try scalar("ranking.loss"), "ranking loss")
        assertClose(gradient(scores), try values("ranking.grad.scores"), "ranking gradient")
        assertClose(rankingAccuracy(scores: scores.scalars, groups: groups), try scalar("ranking.pair_accuracy"), "ranking accuracy")
    }

    func testRankingLossWithTwoResponsesIsThePairwiseLoss() {
        let scores = Tensor(shape: [4], values: [0.3, -1.2, 2.0, 0.5])
        let ranking = rankingRewardLoss(scores: scores, groups: [[0, 1], [3, 2]])
        let pairwise = pairwiseRewardLoss(chosen: Tensor(shape: [2], values: [0.3, 0.5]),
                                          rejected: Tensor(shape: [2], values: [-1.2, 2.0]))
        XCTAssertEqual(ranking.item, pairwise.item, accuracy: 1e-6)
    }

    // MARK: DPO

    func testDPOMatchesTRLFromTokenLogProbs() throws {
        let chosenMask = try values("dpo.chosen_mask"), rejectedMask = try values("dpo.rejected_mask")
        for (name, kind) in [("sigmoid", DPOKind.sigmoid), ("smoothed", .sigmoid), ("ipo", .ipo)] {
            let p = "dpo.\(name)"
            let average = kind == .ipo
            let beta = try scalar("\(p).beta"), smoothing = try scalar("\(p).label_smoothing")
            let referenceChosen = withoutGradients {
                sequenceLogProbs(try! input("dpo.reference_chosen_tokens", requiresGrad: false), mask: chosenMask, average: average).scalars
            }
            let referenceRejected = withoutGradients {
                sequenceLogProbs(try! input("dpo.reference_rejected_tokens", requiresGrad: false), mask: rejectedMask, average: average).scalars
            }
            assertClose(referenceChosen, try values("\(p).reference_chosen"), "\(p) reference chosen log-probs")
            assertClose(referenceRejected, try values("\(p).reference_rejected"), "\(p) reference rejected log-probs")

            // From per-token log-probs through the sequence reduction.
            let chosenTokens = try input("dpo.policy_chosen_tokens"), rejectedTokens = try input("dpo.policy_rejected_tokens")
            var result: (loss: Tensor, chosenRewards: [Float], rejectedRewards: [Float])!
            var policyChosen: [Float] = [], policyRejected: [Float] = []
            backward {
                let c = sequenceLogProbs(chosenTokens, mask: chosenMask, average: average)
                let r = sequenceLogProbs(rejectedTokens, mask: rejectedMask, average: average)
                policyChosen = c.scalars; policyRejected = r.scalars
                result = dpoLoss(policyChosen: c, policyRejected: r, referenceChosen: referenceChosen,
                                 referenceRejected: referenceRejected, beta: beta, kind: kind, labelSmoothing: smoothing)
                return result.loss
            }
            assertClose(policyChosen, try values("\(p).policy_chosen"), "\(p) policy chosen log-probs")
            assertClose(policyRejected, try values("\(p).policy_rejected"), "\(p) policy rejected log-probs")
            assertClose(result.loss.item, try scalar("\(p).loss"), "\(p) loss")
            assertClose(result.chosenRewards, try values("\(p).chosen_rewards"), "\(p) chosen rewards")
            assertClose(result.rejectedRewards, try values("\(p).rejected_rewards"), "\(p) rejected rewards")
            assertClose(gradient(chosenTokens), try values("\(p).grad.policy_chosen_tokens"), "\(p) chosen token gradient")
            assertClose(gradient(rejectedTokens), try values("\(p).grad.policy_rejected_tokens"), "\(p) rejected token gradient")

            // From sequence log-probs directly.
            let c = try input("\(p).policy_chosen"), r = try input("\(p).policy_rejected")
            let loss = backward {
                dpoLoss(policyChosen: c, policyRejected: r, referenceChosen: try! values("\(p).reference_chosen"),
                        referenceRejected: try! values("\(p).reference_rejected"), beta: beta, kind: kind,
                        labelSmoothing: smoothing).loss
            }
            assertClose(loss.item, try scalar("\(p).loss"), "\(p) loss from sequence log-probs")
            assertClose(gradient(c), try values("\(p).grad.policy_chosen"), "\(p) chosen sequence gradient")
            assertClose(gradient(r), try values("\(p).grad.policy_rejected"), "\(p) rejected sequence gradient")
        }
    }

    // MARK: GRPO

    func testGRPOAdvantagesMatchTRL() throws {
        let rewards = try values("grpo.rewards"), groupSize = Int(try scalar("grpo.group_size"))
        assertClose(grpoAdvantages(rewards: rewards, groupSize: groupSize), try values("grpo.advantages"), "scaled advantages")
        assertClose(grpoAdvantages(rewards: rewards, groupSize: groupSize, scaleByStd: false),
                    try values("grpo.advantages_unscaled"), "centred advantages")
    }

    func testGRPOLossMatchesTRL() throws {
        let old = try values("grpo.old_logps"), reference = try values("grpo.ref_logps")
        let mask = try values("grpo.mask"), advantages = try values("grpo.advantages")
        let tokens = try input("grpo.logps").shape[1]
        let variants: [(String, GRPOAggregation)] = [("token", .token), ("sequence", .sequence), ("token_nokl", .token),
                                                     ("asymmetric", .token), ("fixed_length", .fixedLength(tokens))]
        for (name, aggregation) in variants {
            let p = "grpo.\(name)"
            let logProbs = try input("grpo.logps")
            let beta = try scalar("\(p).beta")
            var result: (loss: Tensor, clipFraction: Float, kl: Float)!
            backward {
                result = grpoLoss(logProbs: logProbs, oldLogProbs: old, referenceLogProbs: beta == 0 ? nil : reference,
                                  advantages: advantages, mask: mask, clipEpsilon: try! scalar("\(p).epsilon_low"),
                                  clipEpsilonHigh: try! scalar("\(p).epsilon_high"), klBeta: beta, aggregation: aggregation)
                return result.loss
            }
            assertClose(result.loss.item, try scalar("\(p).loss"), "\(p) loss")
            assertClose(gradient(logProbs), try values("\(p).grad.logps"), "\(p) gradient")
            assertClose(result.clipFraction, try scalar("\(p).clip_ratio"), "\(p) clip fraction")
            assertClose(result.kl, try scalar("\(p).kl"), "\(p) KL")
        }
    }

    func testGRPOIgnoresWhateverPaddingHolds() throws {
        let mask = try values("grpo.mask"), advantages = try values("grpo.advantages")
        var old = try values("grpo.old_logps"), reference = try values("grpo.ref_logps")
        let clean = try input("grpo.logps")
        var dirtyValues = clean.scalars
        for i in mask.indices where mask[i] == 0 { dirtyValues[i] = .nan; old[i] = .infinity; reference[i] = -.infinity }
        let dirty = Tensor(shape: clean.shape, values: dirtyValues, requiresGrad: true)
        let loss = backward {
            grpoLoss(logProbs: dirty, oldLogProbs: old, referenceLogProbs: reference, advantages: advantages,
                     mask: mask, klBeta: 0.04).loss
        }
        assertClose(loss.item, try scalar("grpo.token.loss"), "loss with garbage in the padding")
        assertClose(gradient(dirty), try values("grpo.token.grad.logps"), "gradient with garbage in the padding")
    }

    // MARK: PPO

    func rows(_ flat: [Float], width: Int) -> [[Float]] {
        stride(from: 0, to: flat.count, by: width).map { Array(flat[$0..<($0 + width)]) }
    }

    func testPPORolloutMatchesTRL() throws {
        let width = try input("ppo.logprobs").shape[1]
        let logProbs = rows(try values("ppo.logprobs"), width: width)
        let referenceLogProbs = rows(try values("ppo.ref_logprobs"), width: width)
        let values = rows(try self.values("ppo.values"), width: width)
        let scores = try self.values("ppo.scores")
        let lengths = try self.values("ppo.valid_lengths").map { Int($0) }
        let valueLengths = lengths.map { min($0 + 1, width) }   // TRL's padding_mask_p1
        let klCoefficient = try scalar("ppo.kl_coef")

        let rewards = klPenaltyRewards(logProbs: logProbs, referenceLogProbs: referenceLogProbs, scores: scores,
                                       lengths: lengths, klCoefficient: klCoefficient, scorePlacement: .afterLastToken)
        assertClose(rewards.flatMap { $0 }, try self.values("ppo.rewards"), "k1 KL-penalty rewards")
        let rewardsK3 = klPenaltyRewards(logProbs: logProbs, referenceLogProbs: referenceLogProbs, scores: scores,
                                         lengths: lengths, klCoefficient: klCoefficient, estimator: .k3,
                                         scorePlacement: .afterLastToken)
        assertClose(rewardsK3.flatMap { $0 }, try self.values("ppo.rewards_k3"), "k3 KL-penalty rewards")
        assertClose(whiten(rewards, lengths: valueLengths, shiftMean: false).flatMap { $0 },
                    try self.values("ppo.rewards_whitened"), "whitened rewards (shift_mean=False)")

        let (advantages, returns) = generalizedAdvantageEstimation(
            rewards: rewards, values: values, lengths: valueLengths, gamma: try scalar("ppo.gamma"), lambda: try scalar("ppo.lam"))
        assertClose(advantages.flatMap { $0 }, try self.values("ppo.advantages_raw"), "GAE advantages")
        assertClose(returns.flatMap { $0 }, try self.values("ppo.returns"), "GAE returns")
        assertClose(whiten(advantages, lengths: lengths).flatMap { $0 }, try self.values("ppo.advantages"), "whitened advantages")
    }

    func testPPOPolicyLossMatchesTRL() throws {
        let logProbs = try input("ppo.new_logprobs")
        var result: (loss: Tensor, clipFraction: Float, approxKL: Float)!
        backward {
            result = ppoPolicyLoss(logProbs: logProbs, oldLogProbs: try! values("ppo.logprobs"),
                                   advantages: try! values("ppo.advantages"), mask: try! values("ppo.policy_mask"),
                                   clipRange: try! scalar("ppo.cliprange"))
            return result.loss
        }
        assertClose(result.loss.item, try scalar("ppo.pg_loss"), "policy loss")
        assertClose(gradient(logProbs), try values("ppo.grad.new_logprobs"), "policy gradient")
        assertClose(result.clipFraction, try scalar("ppo.pg_clipfrac"), "policy clip fraction")
        assertClose(result.approxKL, try scalar("ppo.approxkl"), "approximate KL")
        XCTAssertGreaterThan(result.clipFraction, 0, "the reference should exercise clipping")
    }

    func testPPOValueLossMatchesTRL() throws {
        let predictions = try input("ppo.vpred")
        var result: (loss: Tensor, clipFraction: Float)!
        backward {
            result = ppoValueLoss(values: predictions, oldValues: try! values("ppo.values"), returns: try! values("ppo.returns"),
                                  mask: try! values("ppo.value_mask"), clipRange: try! scalar("ppo.cliprange_value"))
            return result.loss
        }
        assertClose(result.loss.item, try scalar("ppo.vf_loss"), "value loss")
        assertClose(gradient(predictions), try values("ppo.grad.vpred"), "value gradient")
        assertClose(result.clipFraction, try scalar("ppo.vf_clipfrac"), "value clip fraction")
    }

    func testGAEOnAHandComputedExample() {
        // γ = 0.9, λ = 0.8, three valid tokens and one padded position holding junk.
        //   δ2 = 2 + 0 − 1.5 = 0.5                    A2 = 0.5
        //   δ1 = 0 + 0.9·1.5 − 1.0 = 0.35             A1 = 0.35 + 0.72·0.5 = 0.71
        //   δ0 = 1 + 0.9·1.0 − 0.5 = 1.4              A0 = 1.4 + 0.72·0.71 = 1.9112
        let (advantages, returns) = generalizedAdvantageEstimation(
            rewards: [[1, 0, 2, 7]], values: [[0.5, 1.0, 1.5, 9]], lengths: [3], gamma: 0.9, lambda: 0.8)
        for (a, e) in zip(advantages[0], [1.9112, 0.71, 0.5, 0] as [Float]) { XCTAssertEqual(a, e, accuracy: 1e-6) }
        for (r, e) in zip(returns[0], [2.4112, 1.71, 2.0, 0] as [Float]) { XCTAssertEqual(r, e, accuracy: 1e-6) }
    }

    func testWhiteningGivesMeanZeroAndUnitStdOnTheMask() {
        let values: [Float] = [3, -1, 4, 1, 5, 100, -9, 2, 6, -50]
        let mask: [Float] = [1, 1, 1, 1, 1, 0, 1, 1, 1, 0]
        let whitened = whiten(values, mask: mask)
        let counted = zip(whitened, mask).filter { $0.1 != 0 }.map { Double($0.0) }
        let mean = counted.reduce(0, +) / Double(counted.count)
        let variance = counted.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(counted.count - 1)
        XCTAssertEqual(mean, 0, accuracy: 1e-6)
        XCTAssertEqual(variance.squareRoot(), 1, accuracy: 1e-6)
        // shiftMean: false keeps the mean and scales the spread.
        let scaled = whiten(values, mask: mask, shiftMean: false)
        let originalMean = zip(values, mask).filter { $0.1 != 0 }.map { Double($0.0) }.reduce(0, +) / Double(counted.count)
        let scaledMean = zip(scaled, mask).filter { $0.1 != 0 }.map { Double($0.0) }.reduce(0, +) / Double(counted.count)
        XCTAssertEqual(scaledMean, originalMean, accuracy: 1e-5)
    }

    func testKLPenaltyRewardsPutTheScoreOnTheLastValidToken() {
        let rewards = klPenaltyRewards(logProbs: [[-1, -2, -3, 1]], referenceLogProbs: [[-1.5, -2, -2, 1]], scores: [10],
                                       lengths: [3], klCoefficient: 0.1)
        // −β·(logp − ref): −0.1·0.5, 0, −0.1·(−1) + 10, padding 0.
        let expected: [Float] = [-0.05, 0, 10.1, 0]
        for (r, e) in zip(rewards[0], expected) { XCTAssertEqual(r, e, accuracy: 1e-6) }
        let trl = klPenaltyRewards(logProbs: [[-1, -2, -3, 1]], referenceLogProbs: [[-1.5, -2, -2, 1]], scores: [10],
                                   lengths: [3], klCoefficient: 0.1, scorePlacement: .afterLastToken)
        XCTAssertEqual(trl[0][3], 10, accuracy: 1e-6)
    }

    // MARK: Running moments and the KL controller

    func testRunningMomentsMatchTRLAndNumpy() throws {
        var moments = RunningMoments()
        var all: [Float] = []
        let means = try values("running.mean"), stds = try values("running.std")
        let batchMeans = try values("running.batch_mean"), batchStds = try values("running.batch_std")
        for i in 0..<3 {
            let batch = try values("running.batch\(i)")
            all += batch
            let (batchMean, batchStd) = moments.update(batch)
            assertClose(batchMean, batchMeans[i], "batch \(i) mean")
            assertClose(batchStd, batchStds[i], "batch \(i) std")
            assertClose(Float(moments.mean), means[i], "running mean after batch \(i)")
            assertClose(Float(moments.std), stds[i], "running std after batch \(i)")
        }
        assertClose(Float(moments.mean), try scalar("running.numpy_mean"), "numpy mean of everything")
        assertClose(Float(moments.std), try scalar("running.numpy_std"), "numpy std (ddof=1) of everything")
        XCTAssertEqual(moments.count, Double(all.count), accuracy: 1e-9)
        let normalized = moments.normalize(all)
        let mean = normalized.map(Double.init).reduce(0, +) / Double(all.count)
        XCTAssertEqual(mean, 0, accuracy: 1e-5)
    }

    func testAdaptiveKLControllerMovesTowardTheTarget() {
        var up = AdaptiveKLController(initial: 0.1, target: 6, horizon: 10_000)
        up.update(currentKL: 6.6, steps: 256)              // error +0.1
        XCTAssertEqual(up.value, 0.1 * (1 + 0.1 * 256 / 10_000), accuracy: 1e-7)
        XCTAssertGreaterThan(up.value, 0.1)

        var down = AdaptiveKLController(initial: 0.1, target: 6, horizon: 10_000)
        down.update(currentKL: 3, steps: 256)              // error −0.5, clipped to −0.2
        XCTAssertEqual(down.value, 0.1 * (1 - 0.2 * 256 / 10_000), accuracy: 1e-7)

        var far = AdaptiveKLController(initial: 0.1, target: 6, horizon: 10_000)
        far.update(currentKL: 60, steps: 256)              // error +9, clipped to +0.2
        XCTAssertEqual(far.value, 0.1 * (1 + 0.2 * 256 / 10_000), accuracy: 1e-7)

        var fixed = FixedKLController(0.05)
        fixed.update(currentKL: 60, steps: 256)
        XCTAssertEqual(fixed.value, 0.05)
    }
}
