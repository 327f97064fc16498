#!/usr/bin/env python3
"""Parity references for Loom's alignment losses (Sources/LoomTrain/Losses/): every loss value and
the gradient with respect to its differentiable input, computed in PyTorch (CPU, float32) with the
formulas of Hugging Face TRL written out here, so TRL itself is not needed to run this script.
Each function names the TRL code it mirrors.

    python Tests/Reference/make_loss_reference.py                 # regenerate the committed files
    python Tests/Reference/make_loss_reference.py --out /tmp/ref  # write elsewhere
    python Tests/Reference/make_loss_reference.py --check         # regenerate into a temp dir and
                                                                  # compare with the committed files

Writes, under the output directory (default Tests/LoomTrainTests/Reference/losses/):

  losses.safetensors  every input, hyperparameter, output and gradient as a float32 tensor, named
                      `<case>.<what>`, gradients `<case>.grad.<input>` (integer inputs such as
                      targets, lengths and group indices are stored as float32 too)
  losses.json         what each case is, the TRL function it follows, and its tensor names

Inputs are small and fixed (torch.manual_seed), with padded positions holding arbitrary finite values
(so a loss that forgets its mask fails), a K=4 and a K=3 ranking group, and ratios that fall inside
and outside the clip range on both sides. Everything runs on one thread, so --check expects
agreement to 1e-6.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "Tests" / "LoomTrainTests" / "Reference" / "losses"
CHECK_TOLERANCE = 1e-6
SEED = 20240611

tensors: dict[str, torch.Tensor] = {}
cases: dict[str, dict] = {}


def put(name: str, value) -> None:
    t = value if isinstance(value, torch.Tensor) else torch.tensor(value)
    t = t.detach().to(torch.float32).contiguous()
    if t.ndim == 0:
        t = t.reshape(1)
    assert name not in tensors, name
    tensors[name] = t


def describe(case: str, text: str, mirrors: str, **extra) -> None:
    cases[case] = dict(description=text, mirrors=mirrors, **extra)


def leaf(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone().requires_grad_(True)


def prefix_mask(lengths: list[int], width: int) -> torch.Tensor:
    idx = torch.arange(width).repeat(len(lengths), 1)
    return idx < torch.tensor(lengths).unsqueeze(1)


def assert_away_from(values: torch.Tensor, mask: torch.Tensor, points: list[float], gap: float = 1e-4) -> None:
    """Ratios exactly at a clip boundary would make the comparison depend on the last ulp of exp."""
    v = values[mask.bool()]
    for p in points:
        assert (v - p).abs().min().item() > gap, f"a value within {gap} of the boundary {p}; change the seed"


# --------------------------------------------------------------------------------------------
# Masked reductions
# --------------------------------------------------------------------------------------------


def masked_mean(values, mask, axis=None):
    """trl.experimental.ppo.ppo_trainer.masked_mean."""
    if axis is not None:
        return (values * mask).sum(axis=axis) / mask.sum(axis=axis)
    return (values * mask).sum() / mask.sum()


def masked_var(values, mask, unbiased=True):
    """trl.experimental.ppo.ppo_trainer.masked_var (Bessel-corrected by default)."""
    mean = masked_mean(values, mask)
    variance = masked_mean((values - mean) ** 2, mask)
    if unbiased:
        n = mask.sum()
        variance = variance * (n / (n - 1))
    return variance


def masked_whiten(values, mask, shift_mean=True):
    """trl.experimental.ppo.ppo_trainer.masked_whiten."""
    mean, var = masked_mean(values, mask), masked_var(values, mask)
    whitened = (values - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        whitened += mean
    return whitened


def case_masked() -> None:
    x = leaf(torch.randn(3, 5) * 2)
    mask = prefix_mask([5, 2, 0], 5).float()
    mask[0, 1] = 0  # a hole, not only a padded tail
    loss = masked_mean(x, mask)
    loss.backward()
    put("masked.x", x); put("masked.mask", mask); put("masked.mean", loss); put("masked.grad.x", x.grad)
    describe("masked", "masked mean over all unmasked elements and its gradient",
             "trl.experimental.ppo.ppo_trainer.masked_mean (axis=None)")


# --------------------------------------------------------------------------------------------
# SFT
# --------------------------------------------------------------------------------------------


def case_sft() -> None:
    logits = leaf(torch.randn(6, 11) * 2)
    targets = torch.tensor([3, -100, 7, 0, -100, 10])
    loss = F.cross_entropy(logits, targets, ignore_index=-100)
    loss.backward()
    put("sft.logits", logits); put("sft.targets", targets); put("sft.loss", loss); put("sft.grad.logits", logits.grad)
    describe("sft", "mean cross-entropy over rows whose target is not -100 (assistant tokens only)",
             "torch.nn.functional.cross_entropy(ignore_index=-100), as trl.SFTTrainer with assistant_only_loss")


# --------------------------------------------------------------------------------------------
# Reward model
# --------------------------------------------------------------------------------------------


def reward_loss(chosen, rejected, margin=None, center_coef=None):
    """trl.RewardTrainer.compute_loss: -logsigmoid(r_c - r_r - margin).mean()
    + center_rewards_coefficient * mean((r_c + r_r)^2)."""
    if margin is not None:
        loss = -F.logsigmoid(chosen - rejected - margin).mean()
    else:
        loss = -F.logsigmoid(chosen - rejected).mean()
    if center_coef is not None:
        loss = loss + center_coef * torch.mean((chosen + rejected) ** 2)
    return loss


def case_reward() -> None:
    chosen0 = torch.randn(5) * 2
    rejected0 = torch.randn(5) * 2
    margin = torch.rand(5)
    put("reward.chosen", chosen0); put("reward.rejected", rejected0); put("reward.margin", margin)
    for name, kwargs in [("reward.plain", {}), ("reward.margin_center", dict(margin=margin, center_coef=0.01))]:
        c, r = leaf(chosen0), leaf(rejected0)
        loss = reward_loss(c, r, **kwargs)
        loss.backward()
        put(f"{name}.loss", loss); put(f"{name}.grad.chosen", c.grad); put(f"{name}.grad.rejected", r.grad)
    put("reward.margin_center.center_coef", 0.01)
    put("reward.accuracy", (chosen0 > rejected0).float().mean())
    put("reward.mean_margin", (chosen0 - rejected0).mean())
    describe("reward", "pairwise Bradley-Terry loss, plain and with margin + reward centering (coef 0.01)",
             "trl.RewardTrainer.compute_loss (margin column, center_rewards_coefficient)")


def ranking_loss(scores, groups):
    """InstructGPT (Ouyang et al. 2022, eq. 1): for each prompt, the mean over its C(K,2) pairs of
    -log sigmoid(r_better - r_worse); prompts averaged so that one with many answers does not dominate.
    TRL has no K-wise trainer; with K=2 this is trl.RewardTrainer's loss."""
    per_prompt = []
    for g in groups:
        pair_losses = [-F.logsigmoid(scores[g[i]] - scores[g[j]]) for i in range(len(g)) for j in range(i + 1, len(g))]
        per_prompt.append(torch.stack(pair_losses).mean())
    return torch.stack(per_prompt).mean()


def case_ranking() -> None:
    groups = [[2, 0, 3, 1], [6, 4, 5]]  # best → worst; a K=4 and a K=3 prompt
    scores = leaf(torch.randn(7) * 1.5)
    loss = ranking_loss(scores, groups)
    loss.backward()
    correct = total = 0
    for g in groups:
        for i in range(len(g)):
            for j in range(i + 1, len(g)):
                correct += int(scores[g[i]].item() > scores[g[j]].item())
                total += 1
    put("ranking.scores", scores); put("ranking.group_indices", [i for g in groups for i in g])
    put("ranking.group_sizes", [len(g) for g in groups])
    put("ranking.loss", loss); put("ranking.grad.scores", scores.grad); put("ranking.pair_accuracy", correct / total)
    describe("ranking", "K-wise ranking loss, groups [[2,0,3,1],[6,4,5]] (best→worst)",
             "InstructGPT reward-model loss; reduces to trl.RewardTrainer for K=2", groups=groups)


# --------------------------------------------------------------------------------------------
# DPO
# --------------------------------------------------------------------------------------------


def sequence_logps(token_logps, mask, average):
    """trl.DPOTrainer.concatenated_forward: per-token log-probs zeroed outside the completion mask and
    summed; for loss_type="ipo" divided by the number of completion tokens (average log-prob)."""
    summed = torch.where(mask.bool(), token_logps, torch.zeros_like(token_logps)).sum(-1)
    return summed / mask.sum(-1) if average else summed


def dpo_loss(pc, pr, rc, rr, beta, loss_type, label_smoothing=0.0):
    """trl.DPOTrainer.dpo_loss for loss_type "sigmoid" (with label smoothing, the cDPO form) and "ipo"."""
    logits = (pc - rc) - (pr - rr)
    if loss_type == "sigmoid":
        losses = -F.logsigmoid(beta * logits) * (1 - label_smoothing) - F.logsigmoid(-beta * logits) * label_smoothing
    elif loss_type == "ipo":
        losses = (logits - 1 / (2 * beta)) ** 2
    else:
        raise ValueError(loss_type)
    chosen_rewards = beta * (pc - rc).detach()
    rejected_rewards = beta * (pr - rr).detach()
    return losses.mean(), chosen_rewards, rejected_rewards


def case_dpo() -> None:
    B, T = 4, 7
    chosen_mask = prefix_mask([7, 4, 5, 2], T).float()
    rejected_mask = prefix_mask([6, 7, 3, 5], T).float()
    ref_c = -torch.rand(B, T) * 3
    ref_r = -torch.rand(B, T) * 3
    pol_c0 = ref_c + 0.3 * torch.randn(B, T)
    pol_r0 = ref_r + 0.3 * torch.randn(B, T)
    for name, t in [("policy_chosen_tokens", pol_c0), ("policy_rejected_tokens", pol_r0),
                    ("reference_chosen_tokens", ref_c), ("reference_rejected_tokens", ref_r),
                    ("chosen_mask", chosen_mask), ("rejected_mask", rejected_mask)]:
        put(f"dpo.{name}", t)
    variants = [("sigmoid", "sigmoid", 0.1, 0.0, False), ("smoothed", "sigmoid", 0.5, 0.1, False),
                ("ipo", "ipo", 0.1, 0.0, True)]
    for name, kind, beta, smoothing, average in variants:
        tc, tr = leaf(pol_c0), leaf(pol_r0)
        pc, pr = sequence_logps(tc, chosen_mask, average), sequence_logps(tr, rejected_mask, average)
        pc.retain_grad(); pr.retain_grad()
        rc, rr = sequence_logps(ref_c, chosen_mask, average), sequence_logps(ref_r, rejected_mask, average)
        loss, cr, rjr = dpo_loss(pc, pr, rc, rr, beta, kind, smoothing)
        loss.backward()
        p = f"dpo.{name}"
        put(f"{p}.beta", beta); put(f"{p}.label_smoothing", smoothing)
        put(f"{p}.policy_chosen", pc); put(f"{p}.policy_rejected", pr)
        put(f"{p}.reference_chosen", rc); put(f"{p}.reference_rejected", rr)
        put(f"{p}.loss", loss); put(f"{p}.chosen_rewards", cr); put(f"{p}.rejected_rewards", rjr)
        put(f"{p}.grad.policy_chosen", pc.grad); put(f"{p}.grad.policy_rejected", pr.grad)
        put(f"{p}.grad.policy_chosen_tokens", tc.grad); put(f"{p}.grad.policy_rejected_tokens", tr.grad)
    describe("dpo", "DPO from per-token log-probs: sigmoid (beta 0.1), sigmoid with label smoothing 0.1 "
             "(beta 0.5), IPO (beta 0.1, average log-probs); gradients w.r.t. sequence and token log-probs",
             "trl.DPOTrainer.concatenated_forward + trl.DPOTrainer.dpo_loss")


# --------------------------------------------------------------------------------------------
# GRPO
# --------------------------------------------------------------------------------------------


def grpo_advantages(rewards, num_generations, scale_rewards=True):
    """trl.GRPOTrainer._generate_and_score_completions: group mean, torch.std (unbiased), + 1e-4."""
    grouped = rewards.view(-1, num_generations)
    mean = grouped.mean(dim=1).repeat_interleave(num_generations)
    std = grouped.std(dim=1).repeat_interleave(num_generations)
    advantages = rewards - mean
    if scale_rewards:
        advantages = advantages / (std + 1e-4)
    return advantages


def grpo_loss(logps, old, ref, advantages, mask, eps_low, eps_high, beta, loss_type, max_len=None):
    """trl.GRPOTrainer._compute_loss (importance_sampling_level="token", no delta, no entropy mask)."""
    if beta != 0.0:
        per_token_kl = torch.exp(ref - logps) - (ref - logps) - 1
    coef_1 = torch.exp(logps - old)
    coef_2 = torch.clamp(coef_1, 1 - eps_low, 1 + eps_high)
    loss1 = coef_1 * advantages.unsqueeze(1)
    loss2 = coef_2 * advantages.unsqueeze(1)
    per_token_loss = -torch.min(loss1, loss2)
    if beta != 0.0:
        per_token_loss = per_token_loss + beta * per_token_kl
    if loss_type == "grpo":
        loss = ((per_token_loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    elif loss_type == "bnpo":  # equal to "dapo" when the batch is the whole batch
        loss = (per_token_loss * mask).sum() / mask.sum().clamp(min=1.0)
    elif loss_type == "dr_grpo":
        loss = (per_token_loss * mask).sum() / (per_token_loss.size(0) * max_len)
    else:
        raise ValueError(loss_type)
    count = mask.sum().clamp(min=1.0)
    kl = (per_token_kl * mask).sum() / count if beta != 0.0 else torch.tensor(0.0)
    low = (coef_1 < 1 - eps_low) & (advantages.unsqueeze(1) < 0)
    high = (coef_1 > 1 + eps_high) & (advantages.unsqueeze(1) > 0)
    clip_ratio = ((low | high).float() * mask).sum() / count
    return loss, clip_ratio, kl


def case_grpo() -> None:
    G, P, T = 4, 2, 6
    S = G * P
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.25, 0.75, 0.5, 0.9])
    put("grpo.rewards", rewards); put("grpo.group_size", G)
    put("grpo.advantages", grpo_advantages(rewards, G))
    put("grpo.advantages_unscaled", grpo_advantages(rewards, G, scale_rewards=False))
    advantages = grpo_advantages(rewards, G)
    mask = prefix_mask([6, 3, 1, 5, 6, 2, 4, 6], T).float()
    old = -torch.rand(S, T) * 3
    ref = old + 0.2 * torch.randn(S, T)
    logps0 = old + 0.3 * torch.randn(S, T)
    assert_away_from(torch.exp(logps0 - old), mask, [0.7, 0.8, 1.2, 1.28])
    put("grpo.logps", logps0); put("grpo.old_logps", old); put("grpo.ref_logps", ref); put("grpo.mask", mask)
    variants = [("token", 0.2, 0.2, 0.04, "bnpo"), ("sequence", 0.2, 0.2, 0.04, "grpo"),
                ("token_nokl", 0.2, 0.2, 0.0, "bnpo"), ("asymmetric", 0.3, 0.28, 0.04, "bnpo"),
                ("fixed_length", 0.2, 0.2, 0.04, "dr_grpo")]
    for name, eps_low, eps_high, beta, loss_type in variants:
        lp = leaf(logps0)
        loss, clip_ratio, kl = grpo_loss(lp, old, ref, advantages, mask, eps_low, eps_high, beta, loss_type, T)
        loss.backward()
        p = f"grpo.{name}"
        put(f"{p}.epsilon_low", eps_low); put(f"{p}.epsilon_high", eps_high); put(f"{p}.beta", beta)
        put(f"{p}.loss", loss); put(f"{p}.grad.logps", lp.grad); put(f"{p}.clip_ratio", clip_ratio); put(f"{p}.kl", kl)
    describe("grpo", "group-normalised advantages (2 prompts x 4 completions) and the clipped surrogate + k3 KL "
             "with token (bnpo/dapo), sequence (grpo), no-KL, asymmetric clip (0.3/0.28) and fixed-length "
             "(dr_grpo, max_completion_length = 6) aggregation",
             "trl.GRPOTrainer._generate_and_score_completions (advantages) + trl.GRPOTrainer._compute_loss",
             variants={v[0]: dict(epsilon_low=v[1], epsilon_high=v[2], beta=v[3], loss_type=v[4]) for v in variants})


# --------------------------------------------------------------------------------------------
# PPO
# --------------------------------------------------------------------------------------------

INVALID_LOGPROB = 1.0


def case_ppo() -> None:
    """trl.experimental.ppo.PPOTrainer.train: steps 4-6 of the rollout (rewards, optional reward
    whitening, GAE, advantage whitening) and the policy and value losses of one micro-batch."""
    S, T = 4, 6
    kl_coef, gamma, lam, cliprange, cliprange_value = 0.05, 1.0, 0.95, 0.2, 0.2
    sequence_lengths = torch.tensor([3, 5, 1, 4])  # TRL's index of the last valid token
    response_idxs = torch.arange(T).repeat(S, 1)
    padding_mask = response_idxs > sequence_lengths.unsqueeze(1)
    sequence_lengths_p1 = sequence_lengths + 1
    padding_mask_p1 = response_idxs > sequence_lengths_p1.unsqueeze(1)

    logprobs = torch.masked_fill(-torch.rand(S, T) * 3, padding_mask, INVALID_LOGPROB)
    ref_logprobs = torch.masked_fill(logprobs + 0.3 * torch.randn(S, T), padding_mask, INVALID_LOGPROB)
    values = torch.masked_fill(torch.randn(S, T), padding_mask_p1, 0)
    scores = torch.randn(S) * 2

    put("ppo.valid_lengths", sequence_lengths + 1)  # Loom takes token counts
    put("ppo.logprobs", logprobs); put("ppo.ref_logprobs", ref_logprobs); put("ppo.values", values)
    put("ppo.scores", scores)
    put("ppo.kl_coef", kl_coef); put("ppo.gamma", gamma); put("ppo.lam", lam)
    put("ppo.cliprange", cliprange); put("ppo.cliprange_value", cliprange_value)

    def rewards_for(estimator):
        logr = ref_logprobs - logprobs
        kl = -logr if estimator == "k1" else (logr.exp() - 1) - logr
        rewards = (-kl_coef * kl).clone()
        actual_end = torch.where(sequence_lengths_p1 < T, sequence_lengths_p1, sequence_lengths)
        rewards[torch.arange(S), actual_end] += scores
        return rewards

    rewards = rewards_for("k1")
    put("ppo.rewards", rewards); put("ppo.rewards_k3", rewards_for("k3"))
    whitened_rewards = torch.masked_fill(masked_whiten(rewards, ~padding_mask_p1, shift_mean=False), padding_mask_p1, 0)
    put("ppo.rewards_whitened", whitened_rewards)

    lastgaelam = 0
    reversed_advantages = []
    for t in reversed(range(T)):
        nextvalues = values[:, t + 1] if t < T - 1 else 0.0
        delta = rewards[:, t] + gamma * nextvalues - values[:, t]
        lastgaelam = delta + gamma * lam * lastgaelam
        reversed_advantages.append(lastgaelam)
    advantages_raw = torch.stack(reversed_advantages[::-1], axis=1)
    returns = advantages_raw + values
    advantages = torch.masked_fill(masked_whiten(advantages_raw, ~padding_mask), padding_mask, 0)
    put("ppo.advantages_raw", advantages_raw); put("ppo.returns", returns); put("ppo.advantages", advantages)

    # One optimisation step later: new log-probs and value predictions.
    new_logprobs0 = torch.masked_fill(logprobs + 0.3 * torch.randn(S, T), padding_mask, INVALID_LOGPROB)
    vpred0 = torch.masked_fill(values + 0.4 * torch.randn(S, T), padding_mask_p1, 0)
    assert_away_from(torch.exp(new_logprobs0 - logprobs), ~padding_mask, [1 - cliprange, 1 + cliprange])
    assert_away_from(vpred0 - values, ~padding_mask_p1, [-cliprange_value, cliprange_value])
    put("ppo.new_logprobs", new_logprobs0); put("ppo.vpred", vpred0)

    new_logprobs = leaf(new_logprobs0)
    logprobs_diff = new_logprobs - logprobs
    ratio = torch.exp(logprobs_diff)
    pg_losses = -advantages * ratio
    pg_losses2 = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    pg_loss = masked_mean(torch.max(pg_losses, pg_losses2), ~padding_mask)
    pg_loss.backward()
    pg_clipfrac = masked_mean((pg_losses2 > pg_losses).float(), ~padding_mask)
    # TRL logs 0.5 * (logprobs_diff**2).mean() over every position (padding contributes zeros because
    # both log-probs hold INVALID_LOGPROB there); Loom takes the mean over valid tokens only.
    approxkl = masked_mean(0.5 * logprobs_diff.detach() ** 2, ~padding_mask)
    put("ppo.pg_loss", pg_loss); put("ppo.grad.new_logprobs", new_logprobs.grad)
    put("ppo.pg_clipfrac", pg_clipfrac); put("ppo.approxkl", approxkl)

    vpred = leaf(vpred0)
    vpredclipped = torch.clamp(vpred, values - cliprange_value, values + cliprange_value)
    vf_losses1 = torch.square(vpred - returns)
    vf_losses2 = torch.square(vpredclipped - returns)
    vf_loss = 0.5 * masked_mean(torch.max(vf_losses1, vf_losses2), ~padding_mask_p1)
    vf_loss.backward()
    vf_clipfrac = masked_mean((vf_losses2 > vf_losses1).float(), ~padding_mask_p1)
    put("ppo.vf_loss", vf_loss); put("ppo.grad.vpred", vpred.grad); put("ppo.vf_clipfrac", vf_clipfrac)
    put("ppo.policy_mask", (~padding_mask).float()); put("ppo.value_mask", (~padding_mask_p1).float())

    describe("ppo", "PPO rollout post-processing and losses on 4 responses of up to 6 tokens (valid lengths "
             "4, 6, 2, 5): k1/k3 KL-penalty rewards with the score one past the last valid token, reward "
             "whitening (shift_mean=False), GAE (gamma 1, lambda 0.95), advantage whitening, clipped policy "
             "loss (valid tokens) and clipped value loss (valid tokens + 1, TRL's padding_mask_p1)",
             "trl.experimental.ppo.PPOTrainer.train + masked_mean/masked_var/masked_whiten")


def case_running_moments() -> None:
    """trl.trainer.utils.RunningMoments.update (single process), in float64 like its Python-float state."""
    batches = [torch.randn(5) * 3 + 1, torch.randn(8) * 0.5 - 2, torch.randn(3) * 2]
    mean, var, std, count = 0.0, 1.0, 1.0, 1e-24
    means, stds, batch_means, batch_stds = [], [], [], []
    for i, xs in enumerate(batches):
        put(f"running.batch{i}", xs)
        x = xs.double()
        xs_count = x.numel()
        xs_var, xs_mean = torch.var_mean(x, unbiased=False)
        delta = xs_mean.item() - mean
        tot_count = count + xs_count
        new_sum = xs_var.item() * xs_count
        old_sum = var * count + delta ** 2 * count * xs_count / tot_count
        tot_sum = old_sum + new_sum
        mean += delta * xs_count / tot_count
        new_var = tot_sum / tot_count
        std = math.sqrt(new_var * tot_count / (tot_count - 1))
        var = new_var
        count = tot_count
        means.append(mean); stds.append(std)
        batch_means.append(xs_mean.item()); batch_stds.append(math.sqrt(xs_var.item() * xs_count / (xs_count - 1)))
    everything = torch.cat(batches).double().numpy()
    put("running.mean", means); put("running.std", stds)
    put("running.batch_mean", batch_means); put("running.batch_std", batch_stds)
    put("running.numpy_mean", float(np.mean(everything))); put("running.numpy_std", float(np.std(everything, ddof=1)))
    describe("running", "running mean/std over three batches (5, 8, 3 values) and numpy over their concatenation",
             "trl.trainer.utils.RunningMoments.update")


def generate(out: Path) -> None:
    tensors.clear(); cases.clear()
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    for make in [case_masked, case_sft, case_reward, case_ranking, case_dpo, case_grpo, case_ppo, case_running_moments]:
        make()
    out.mkdir(parents=True, exist_ok=True)
    save_file(dict(sorted(tensors.items())), str(out / "losses.safetensors"), metadata={"generator": "make_loss_reference.py"})
    document = dict(
        generator="Tests/Reference/make_loss_reference.py",
        torch=torch.__version__,
        seed=SEED,
        cases={name: dict(info, tensors=sorted(k for k in tensors if k.split(".")[0] == name))
               for name, info in cases.items()},
    )
    (out / "losses.json").write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    print(f"wrote {len(tensors)} tensors to {out}")


def compare(fresh: Path, committed: Path) -> bool:
    ok = True
    a, b = load_file(str(fresh / "losses.safetensors")), load_file(str(committed / "losses.safetensors"))
    if a.keys() != b.keys():
        print(f"tensor names differ: only new {sorted(a.keys() - b.keys())}, only committed {sorted(b.keys() - a.keys())}")
        ok = False
    for name in sorted(a.keys() & b.keys()):
        if a[name].shape != b[name].shape:
            print(f"{name}: shape {tuple(a[name].shape)} vs committed {tuple(b[name].shape)}"); ok = False
        elif (a[name] - b[name]).abs().max().item() > CHECK_TOLERANCE * max(1.0, b[name].abs().max().item()):
            print(f"{name}: differs by {(a[name] - b[name]).abs().max().item():.3g}"); ok = False
    ja, jb = json.loads((fresh / "losses.json").read_text()), json.loads((committed / "losses.json").read_text())
    ja.pop("torch", None); jb.pop("torch", None)
    if ja != jb:
        print("losses.json differs"); ok = False
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})")
    parser.add_argument("--check", nargs="?", type=Path, const=DEFAULT_OUT, default=None, metavar="DIR",
                        help="regenerate into a temporary dir and compare with the files under DIR "
                             f"(default {DEFAULT_OUT}); exits 1 on any difference above {CHECK_TOLERANCE}")
    args = parser.parse_args()
    if args.check is not None:
        with tempfile.TemporaryDirectory() as tmp:
            generate(Path(tmp))
            ok = compare(Path(tmp), args.check)
        print("reference check passed" if ok else "reference check FAILED")
        return 0 if ok else 1
    generate(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
