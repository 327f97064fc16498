#!/usr/bin/env python3
"""Data-parallel training under mpirun against one process, with the release `loom`.

    python3 Tests/MPI/check_data_parallel.py --loom .build/release/loom          # scripts/test.sh
    python3 Tests/MPI/check_data_parallel.py --loom L --mpirun-args "--host a,b"  # across hosts

Checks that `mpirun -np 2` with batch B per rank gives the same loss sequence and final weights
(relative difference <= 1e-5) as one process with batch 2B on the same data and seed, for
pretrain, sft, reward and dpo, and the same per-step metrics, final policy (and PPO's critic) for
grpo and ppo (rollouts split across ranks, sampled alike whatever the split), with --zero 1 too;
that runs written by 2 ranks (pretrain, ppo) resume on 1 and continue the same curve; and that
bad launches stop with a message instead of hanging: ranks with different settings, a batch or
PPO minibatch that does not divide by the ranks, a rank killed mid-run, a command that does not
train data-parallel; and that the all-reduce overlapped with the backward pass (small buckets)
equals the one after it bit for bit.

Open MPI refuses to run as root unless told (CI runs as root): the environment below allows it,
and --oversubscribe lets 2 ranks share fewer cores. Only the Python standard library is used.
The exit status is 1 when any check failed.
"""
import argparse
import array
import json
import math
import os
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import time

TOLERANCE = 1e-5
MPI_ENVIRONMENT = {
    "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    # Containers often forbid the cross-memory attach of Open MPI's shared-memory transport.
    "OMPI_MCA_btl_vader_single_copy_mechanism": "none",
}

TINY = {
    "model": {"vocab_size": 320, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
              "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 64,
              "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": True},
    "train": {"batch_size": 4, "context_length": 32, "steps": 4, "learning_rate": 0.003, "min_learning_rate": 0.0003,
              "warmup_steps": 1, "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "grad_clip": 1.0,
              "gradient_accumulation": 1, "eval_interval": 2, "eval_batches": 1, "checkpoint_interval": 2, "seed": 7},
}


class Checker:
    def __init__(self, loom, root, mpirun_args, timeout):
        self.loom, self.root, self.mpirun_args, self.timeout = loom, root, mpirun_args, timeout
        self.passed, self.failed = 0, []

    def run(self, command, extra_env=None, timeout=None):
        env = dict(os.environ, **MPI_ENVIRONMENT, **(extra_env or {}))
        started = time.time()
        try:
            p = subprocess.run(command, cwd=self.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, timeout=timeout or self.timeout)
            return p.returncode, p.stdout.decode("utf-8", "replace"), time.time() - started
        except subprocess.TimeoutExpired as expired:
            return None, (expired.stdout or b"").decode("utf-8", "replace"), time.time() - started

    def loom_once(self, *args):
        return self.run([self.loom] + list(args))

    def mpirun(self, ranks, *args, env=None, timeout=None):
        exported = []
        for name in (env or {}):
            exported += ["-x", name]
        return self.run(["mpirun", "-np", str(ranks), "--oversubscribe", "--bind-to", "none"] + self.mpirun_args
                        + exported + [self.loom] + list(args), extra_env=env, timeout=timeout)

    def must(self, outcome, what):
        code, output, _ = outcome
        if code != 0:
            raise SystemExit(f"mpi check: {what} failed with {code}:\n{output[-3000:]}")

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"  ok   {name}{(': ' + detail) if detail else ''}", flush=True)
        else:
            self.failed.append(name)
            print(f"  FAIL {name}{(': ' + detail) if detail else ''}", flush=True)


def write_json(path, value):
    with open(path, "w") as f:
        json.dump(value, f)


def read_safetensors(path):
    with open(path, "rb") as f:
        length = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(length))
        data = f.read()
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        assert entry["dtype"] == "F32", f"{path}: {name} is {entry['dtype']}"
        start, end = entry["data_offsets"]
        values = array.array("f")
        values.frombytes(data[start:end])
        tensors[name] = values
    return tensors


def relative_difference(a, b):
    """||a - b|| / ||b|| over every tensor of two weight files (inf when the names differ)."""
    if set(a) != set(b):
        return math.inf
    diff = norm = 0.0
    for name in b:
        for x, y in zip(a[name], b[name]):
            diff += (x - y) ** 2
            norm += y * y
    return math.sqrt(diff) / max(math.sqrt(norm), 1e-30)


def metric(run_directory, key):
    values = []
    with open(os.path.join(run_directory, "metrics.jsonl")) as f:
        for line in f:
            record = json.loads(line)
            if key in record and record[key] is not None:
                values.append(record[key])
    return values


def loss_difference(a, b, floor=1e-12):
    """Largest |a - b| / max(|b|, floor) over two sequences (inf when their lengths differ).
    `floor` keeps figures that are 0 up to rounding (an RL loss of centred advantages) from
    turning a rounding difference into a huge relative one."""
    if len(a) != len(b) or not a:
        return math.inf
    return max(abs(x - y) / max(abs(y), floor) for x, y in zip(a, b))


def compare_runs(checker, name, single, parallel, loss_key="loss", metrics=(), floor=1e-12):
    """The loss sequence (and each of `metrics`) and the final weights of two runs."""
    single_dir, parallel_dir = os.path.join(checker.root, single), os.path.join(checker.root, parallel)
    for key in (loss_key,) + tuple(metrics):
        la, lb = metric(parallel_dir, key), metric(single_dir, key)
        d_loss = loss_difference(la, lb, floor)
        checker.check(f"{name}: {key} sequence", d_loss <= TOLERANCE,
                      f"{len(la)} vs {len(lb)} steps, max relative difference {d_loss:.2e}")
    d_weights = relative_difference(read_safetensors(os.path.join(parallel_dir, "model.safetensors")),
                                    read_safetensors(os.path.join(single_dir, "model.safetensors")))
    checker.check(f"{name}: final weights", d_weights <= TOLERANCE, f"relative difference {d_weights:.2e}")


def build_world(checker):
    root = checker.root
    os.makedirs(os.path.join(root, "corpus"))
    for d in range(20):
        with open(os.path.join(root, "corpus", f"doc{d}.txt"), "w") as f:
            f.write("\n".join(f"Document {d} line {i}: {d * 31 + i * 7} follows {i * i + d} and precedes {(d + 3) * (i + 5)}."
                              for i in range(20)))
    single = json.loads(json.dumps(TINY))
    per_rank = json.loads(json.dumps(TINY))
    per_rank["train"]["batch_size"] = TINY["train"]["batch_size"] // 2
    other = json.loads(json.dumps(per_rank))
    other["train"]["learning_rate"] = 0.001
    write_json(os.path.join(root, "single.json"), single)
    write_json(os.path.join(root, "per_rank.json"), per_rank)
    write_json(os.path.join(root, "other.json"), other)
    checker.must(checker.loom_once("prepare", "--input", "corpus", "--out", "data", "--vocab-size", "300", "--val-fraction", "0.2",
                                   "--shard-tokens", "4000", "--quiet", "--min-chars", "1"), "prepare")
    checker.must(checker.loom_once("pretrain", "--config", "single.json", "--data", "data", "--out", "base", "--steps", "2",
                                   "--threads", "1", "--log-interval", "100"), "pretrain of the base model")
    checker.must(checker.loom_once("tasks", "--out", "tasks", "--train", "24", "--dev", "8", "--test", "8", "--seed", "3"), "tasks")


def pretrain_args(config, out, *extra):
    return ["pretrain", "--config", config, "--data", "data", "--out", out, "--threads", "1", "--log-interval", "100"] + list(extra)


def stage_args(stage, data, out, batch, *extra):
    return [stage, "--model", "base", "--data", data, "--out", out, "--steps", "4", "--batch-size", str(batch),
            "--warmup-steps", "1", "--threads", "1", "--log-interval", "100", "--eval-interval", "2"] + list(extra)


def grpo_args(out, batch, *extra):
    return (["grpo", "--model", "base", "--prompts", "tasks/prompts_train.jsonl", "--out", out, "--steps", "3",
            "--batch-size", str(batch), "--group-size", "2", "--max-new-tokens", "4", "--reward", "model", "--reward-model", "rm",
            "--updates-per-batch", "2", "--learning-rate", "0.01", "--warmup-steps", "0", "--threads", "1", "--log-interval", "100"]
            + list(extra))


def ppo_args(out, batch, *extra, steps=4):
    """PPO with the pretraining mix, its ptx batch per rank like --batch-size; 2 minibatches. A
    constant learning rate, so that a run stopped at step 2 and resumed is the 4-step run."""
    return ["ppo", "--policy", "base", "--reward", "rm", "--prompts", "tasks/prompts_train.jsonl", "--out", out, "--steps", str(steps),
            "--batch-size", str(batch), "--ptx-data", "data", "--ptx-batch-size", str(batch // 2 or 1), "--minibatches", "2",
            "--max-new-tokens", "4", "--learning-rate", "0.01", "--min-learning-rate", "0.01", "--checkpoint-interval", "2",
            "--threads", "1", "--log-interval", "100"] + list(extra)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--loom", required=True)
    parser.add_argument("--mpirun-args", default="", help="extra mpirun arguments (hosts, transports)")
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--keep", help="keep the work directory here")
    parser.add_argument("--zero", action="store_true", help="also check --zero 1 (optimizer state sharded)")
    args = parser.parse_args()
    if shutil.which("mpirun") is None:
        raise SystemExit("mpi check: mpirun not found (scripts/install_dependencies.sh installs openmpi-bin)")
    root = args.keep or tempfile.mkdtemp(prefix="loom-mpi-")
    if args.keep:
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root)
    loom = os.path.abspath(args.loom)
    checker = Checker(loom, root, shlex.split(args.mpirun_args), args.timeout)
    started = time.time()
    try:
        build_world(checker)
        variants = [("", [])] + ([(" --zero 1", ["--zero", "1"])] if args.zero else [])

        # Equivalence: 2 ranks × B against 1 process × 2B.
        checker.must(checker.loom_once(*pretrain_args("single.json", "pretrain-1")), "pretrain, 1 process")
        for label, zero in variants:
            out = "pretrain-2" + label.replace(" ", "")
            checker.must(checker.mpirun(2, *pretrain_args("per_rank.json", out, *zero)), f"pretrain{label}, 2 ranks")
            compare_runs(checker, f"pretrain{label}, 2 ranks × 2 = 1 × 4", "pretrain-1", out)
            checker.check(f"pretrain{label}: global tokens in metrics", metric(os.path.join(root, out), "tokens")
                          == metric(os.path.join(root, "pretrain-1"), "tokens"))
        for stage, data in [("sft", "tasks/sft_train.jsonl"), ("dpo", "tasks/preferences_train.jsonl"), ("reward", "tasks/rankings_train.jsonl")]:
            checker.must(checker.loom_once(*stage_args(stage, data, f"{stage}-1", 4)), f"{stage}, 1 process")
            for label, zero in variants:
                out = f"{stage}-2" + label.replace(" ", "")
                checker.must(checker.mpirun(2, *stage_args(stage, data, out, 2, *zero)), f"{stage}{label}, 2 ranks")
                compare_runs(checker, f"{stage}{label}, 2 ranks × 2 = 1 × 4", f"{stage}-1", out)

        # The all-reduce overlapped with the backward pass (buckets of 262 floats: many buckets, each
        # started as soon as its gradients are final) gives the same gradients as the all-reduce
        # after the backward pass, bit for bit (2 ranks: each sum has one order).
        for stage, make in [("pretrain", lambda out: pretrain_args("per_rank.json", out)),
                            ("sft", lambda out: stage_args("sft", "tasks/sft_train.jsonl", out, 2))]:
            runs = {}
            for label, megabytes in [("after", "0"), ("overlapped", "0.001")]:
                runs[label] = f"{stage}-{label}"
                checker.must(checker.mpirun(2, *make(runs[label]), env={"LOOM_GRADIENT_BUCKET_MB": megabytes}),
                             f"{stage}, 2 ranks, LOOM_GRADIENT_BUCKET_MB={megabytes}")
            same_losses = metric(os.path.join(root, runs["after"]), "loss") == metric(os.path.join(root, runs["overlapped"]), "loss")
            d_weights = relative_difference(read_safetensors(os.path.join(root, runs["overlapped"], "model.safetensors")),
                                            read_safetensors(os.path.join(root, runs["after"], "model.safetensors")))
            checker.check(f"{stage}: all-reduce overlapped with the backward pass = after it, bit for bit", same_losses and d_weights == 0,
                          f"losses {'identical' if same_losses else 'differ'}, weights relative difference {d_weights:.2e}")
        code, output, _ = checker.mpirun(2, *pretrain_args("per_rank.json", "bad-bucket"), env={"LOOM_GRADIENT_BUCKET_MB": "lots"})
        checker.check("a bad LOOM_GRADIENT_BUCKET_MB is refused", code not in (0, None) and "LOOM_GRADIENT_BUCKET_MB" in output, f"exit {code}")

        # RL stages: each rank rolls out its rows of the global batch, sampling each with the
        # step's seed + the row's place in the global batch, so 2 ranks draw the answers one
        # process draws. The reward model's scores differ between answers: every group has a
        # spread, and the updates are not zero. RL losses of centred advantages can be ~0:
        # their differences are relative to max(|loss|, 1e-3).
        checker.must(checker.loom_once(*stage_args("reward", "tasks/rankings_train.jsonl", "rm", 4)), "reward model for grpo and ppo")
        for label, zero in variants:
            if not zero:
                checker.must(checker.loom_once(*grpo_args("grpo-1", 4)), "grpo, 1 process")
            out = "grpo-2" + label.replace(" ", "")
            checker.must(checker.mpirun(2, *grpo_args(out, 2, *zero)), f"grpo{label}, 2 ranks")
            compare_runs(checker, f"grpo{label}, 2 ranks × 2 prompts = 1 × 4", "grpo-1", out, metrics=("reward", "kl", "clip_fraction"),
                         floor=1e-3)
        for label, zero in variants:
            if not zero:
                checker.must(checker.loom_once(*ppo_args("ppo-1", 4)), "ppo, 1 process")
            out = "ppo-2" + label.replace(" ", "")
            checker.must(checker.mpirun(2, *ppo_args(out, 2, *zero)), f"ppo{label}, 2 ranks")
            compare_runs(checker, f"ppo{label}, 2 ranks × 2 rollouts = 1 × 4", "ppo-1", out, loss_key="policy_loss",
                         metrics=("reward", "kl", "value_loss", "ptx_loss"), floor=1e-3)
            critic = os.path.join("checkpoints", "step-00000004", "critic", "model.safetensors")
            exported = [os.path.join(root, run, critic) for run in ("ppo-1", out)]
            if all(os.path.exists(path) for path in exported):
                d_critic = relative_difference(read_safetensors(exported[1]), read_safetensors(exported[0]))
                checker.check(f"ppo{label}: final critic", d_critic <= TOLERANCE, f"relative difference {d_critic:.2e}")
            else:
                checker.check(f"ppo{label}: final critic", False, f"missing {[p for p in exported if not os.path.exists(p)]}")
        # A PPO run of 2 ranks (critic, running statistics and KL controller in its checkpoint)
        # resumes on 1 process and continues the same curve.
        checker.must(checker.mpirun(2, *ppo_args("ppo-resume", 2, steps=2)), "ppo to step 2, 2 ranks")
        checker.must(checker.loom_once(*ppo_args("ppo-resume", 4, "--resume")), "ppo resumed on 1 process")
        compare_runs(checker, "ppo, 2 ranks to step 2, resumed on 1 to step 4", "ppo-1", "ppo-resume", loss_key="policy_loss",
                     metrics=("reward", "value_loss"), floor=1e-3)

        # A run written by 2 ranks resumes on 1 (same global batch) and continues the same curve.
        for label, zero in variants:
            out = "resume" + label.replace(" ", "")
            checker.must(checker.mpirun(2, *pretrain_args("per_rank.json", out, "--steps", "2", *zero)), f"pretrain{label} to step 2, 2 ranks")
            checker.must(checker.loom_once(*pretrain_args("single.json", out, "--resume")), f"resume{label} on 1 process")
            compare_runs(checker, f"2 ranks{label} to step 2, resumed on 1 to step 4", "pretrain-1", out)

        # Bad launches stop with a message, never hang.
        code, output, seconds = checker.run(["mpirun", "-np", "1", "--oversubscribe", "--bind-to", "none"] + checker.mpirun_args
                                            + [loom] + pretrain_args("per_rank.json", "mixed") + [":", "-np", "1", loom]
                                            + pretrain_args("other.json", "mixed"))
        checker.check("ranks with different settings are refused", code not in (0, None)
                      and "started with other settings" in output and "learningRate" in output, f"exit {code} in {seconds:.1f} s")
        # 23 training pairs: a global batch of 2 × 20 is cut to 23, which 2 ranks cannot share.
        code, output, seconds = checker.mpirun(2, *stage_args("dpo", "tasks/preferences_train.jsonl", "indivisible", 20))
        checker.check("a global batch that does not divide is refused", code not in (0, None) and "does not divide by 2 ranks" in output,
                      f"exit {code}: {output.strip().splitlines()[-1] if output.strip() else ''}"[:200])
        code, output, seconds = checker.mpirun(2, *pretrain_args("per_rank.json", "killed"), env={"LOOM_FAULT_CHECKPOINT": "1"}, timeout=60)
        checker.check("a rank killed mid-run stops the others", code not in (0, None) and "signal 9" in output,
                      f"exit {code} after {seconds:.1f} s")
        # PPO's minibatches are cut from the global batch, then across the ranks: 2 minibatches
        # of a global batch of 2 × 3 hold 3 rollouts each, which 2 ranks cannot share.
        code, output, seconds = checker.mpirun(2, *ppo_args("ppo-uneven", 3))
        checker.check("ppo: minibatches that do not divide by the ranks are refused",
                      code not in (0, None) and "do not divide by 2 ranks" in output, f"exit {code}")
        code, output, seconds = checker.mpirun(2, "generate", "--model", "base", "--prompt", "Hello", "--max-tokens", "2")
        checker.check("a command that does not train data-parallel is refused", code not in (0, None) and "data-parallel" in output,
                      f"exit {code}")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(f"mpi checks: {checker.passed} passed, {len(checker.failed)} failed in {time.time() - started:.0f} s"
          + (f" ({', '.join(checker.failed)})" if checker.failed else ""))
    sys.exit(1 if checker.failed else 0)


if __name__ == "__main__":
    main()
