#!/usr/bin/env python3
"""Load and latency benchmark for an OpenAI-compatible server on loopback (`loom serve`, or
llama-cpp-python's `python -m llama_cpp.server` for comparison). Standard library only.

    # starts `loom serve` itself:
    python Benchmarks/serve_load.py --loom .build/release/loom --model DIR [--server-arg=--parallel --server-arg=16]
    # a server that already runs (give its PID to sample its memory):
    python Benchmarks/serve_load.py --url http://127.0.0.1:8080 --pid 1234

Two phases (--phases load,levels by default):

load    --load-clients (64) clients for --load-seconds (120): streaming and not, short, medium and
        long prompts, 8 to 160 new tokens, and about one streamed request in eight disconnecting
        after a few chunks. Counts the requests that failed but should have succeeded (anything but
        a complete answer, an intended disconnect, or a 503 with an OpenAI error body when the
        server's queue is full: those are counted apart, as are requests still running
        --drain-seconds (60) after the end, which the client closes), checks that the server still runs and
        answers /health, and samples its resident memory (VmRSS of /proc/PID/status) every second:
        "flat" when the mean of the last 10 s exceeds the mean of the 10 s after the first minute
        by at most max(3 %, 16 MiB).
levels  streaming clients at each of --levels (1,4,16) for --level-seconds (30) each, every client
        sending the same kind of request back to back (a story prompt, --max-tokens new tokens,
        temperature 0.8, seeded): p50/p99 time to first token, p50 latency, and aggregate decode
        tokens/s (completion tokens of all requests over the level's wall time).

Prints a report; --json FILE writes the figures. Exit status 1 when the load phase saw a failed
request that should have succeeded, the server crashed, or its memory was not flat.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import sys
import threading
import time
import urllib.parse
from pathlib import Path

PARAGRAPH = ("The history of the lighthouse begins with fires lit on hilltops to guide ships home. Over the "
             "centuries these fires became towers of stone with lamps of oil, then lenses that gathered the "
             "light into beams seen from far out at sea. Keepers lived beside them, trimming wicks and "
             "winding clockwork through the night. ")
PROMPTS = {
    "short": "What is the capital of France?",
    "medium": PARAGRAPH + "Summarize this text.",
    "long": PARAGRAPH * 6 + "What was the job of a lighthouse keeper?",
}
STORY = "Write a long story about a lighthouse keeper who finds a message in a bottle."


class Outcome:
    """One request's result."""

    __slots__ = ("kind", "ok", "status", "error", "started", "first_token", "finished", "tokens")

    def __init__(self, kind: str):
        self.kind = kind  # "ok", "disconnected" (on purpose), "rejected" (503), "cut" (at the end), "failed"
        self.ok = False
        self.status = 0
        self.error = ""
        self.started = time.monotonic()
        self.first_token: float | None = None
        self.finished: float | None = None
        self.tokens = 0


class Client:
    def __init__(self, url: str, api_key: str | None, model: str | None, timeout: float):
        parsed = urllib.parse.urlsplit(url)
        self.host, self.port = parsed.hostname, parsed.port or 80
        self.headers = {"Content-Type": "application/json"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self.model = model
        self.timeout = timeout
        self.open_connections: set[http.client.HTTPConnection] = set()
        self.lock = threading.Lock()
        self.cut = False  # set when the benchmark closes the requests still running at its end

    def cut_open_requests(self) -> int:
        """Closes every request still running (they end as "cut"); returns how many there were."""
        import socket
        with self.lock:
            self.cut = True
            connections = list(self.open_connections)
        for connection in connections:
            try:
                if connection.sock is not None:
                    connection.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return len(connections)

    def chat(self, prompt: str, max_tokens: int, stream: bool, seed: int, disconnect_after: int | None = None,
             temperature: float = 0.8) -> Outcome:
        """One chat completion. With disconnect_after, closes the connection after that many chunks."""
        outcome = Outcome("failed")
        body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
                "temperature": temperature, "seed": seed, "stream": stream}
        if self.model:
            body["model"] = self.model
        if stream:
            body["stream_options"] = {"include_usage": True}
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        with self.lock:
            self.open_connections.add(connection)
        try:
            connection.request("POST", "/v1/chat/completions", body=json.dumps(body), headers=self.headers)
            response = connection.getresponse()
            outcome.status = response.status
            if response.status != 200:
                data = response.read()
                try:
                    message = json.loads(data)["error"]["message"]
                except (ValueError, KeyError, TypeError):
                    message = None
                if response.status == 503 and message:
                    outcome.kind = "rejected"
                else:
                    outcome.error = f"HTTP {response.status}: {data[:200]!r}"
                return outcome
            if not stream:
                answer = json.loads(response.read())
                outcome.first_token = outcome.finished = time.monotonic()
                outcome.tokens = answer["usage"]["completion_tokens"]
                if not answer["choices"]:
                    outcome.error = "no choices"
                    return outcome
                outcome.kind, outcome.ok = "ok", True
                return outcome
            chunks = 0
            content_chunks = 0
            usage_tokens = None
            while True:
                line = response.readline()
                if not line:
                    outcome.error = f"the stream ended without [DONE] after {chunks} chunks"
                    return outcome
                line = line.strip()
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    break
                chunk = json.loads(data)
                chunks += 1
                if chunk.get("usage"):
                    usage_tokens = chunk["usage"].get("completion_tokens")
                for choice in chunk.get("choices") or []:
                    if (choice.get("delta") or {}).get("content"):
                        content_chunks += 1
                        if outcome.first_token is None:
                            outcome.first_token = time.monotonic()
                if disconnect_after is not None and chunks >= disconnect_after:
                    connection.close()
                    outcome.kind = "disconnected"
                    return outcome
            outcome.finished = time.monotonic()
            outcome.tokens = usage_tokens if usage_tokens is not None else content_chunks
            outcome.kind, outcome.ok = "ok", True
            return outcome
        except (OSError, http.client.HTTPException, ValueError, KeyError) as error:
            outcome.error = f"{type(error).__name__}: {error}"
            return outcome
        finally:
            with self.lock:
                self.open_connections.discard(connection)
                if outcome.kind == "failed" and self.cut:
                    outcome.kind = "cut"
            connection.close()


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def resident_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def process_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in state


def health(url: str) -> int:
    parsed = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    try:
        connection.request("GET", "/health")
        return connection.getresponse().status
    except OSError:
        return 0
    finally:
        connection.close()


def load_phase(client: Client, url: str, pid: int | None, clients: int, seconds: float, drain: float) -> dict:
    print(f"== load: {clients} clients for {seconds:.0f} s (streaming and not, mixed lengths, some disconnecting)",
          flush=True)
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    memory: list[tuple[float, float]] = []
    stop_sampling = threading.Event()
    started = time.monotonic()

    def sample_memory() -> None:
        while not stop_sampling.is_set():
            value = resident_mib(pid) if pid else None
            if value is not None:
                memory.append((time.monotonic() - started, value))
            stop_sampling.wait(1.0)

    def worker(index: int) -> None:
        rng = random.Random(index)
        while time.monotonic() < deadline:
            size = rng.choice(["short", "short", "medium", "long"])
            stream = rng.random() < 0.6
            disconnect = rng.randint(1, 4) if stream and rng.random() < 0.125 else None
            max_tokens = rng.choice([8, 16, 32, 64, 128, 160])
            outcome = client.chat(PROMPTS[size], max_tokens, stream, seed=rng.randint(0, 1 << 30),
                                  disconnect_after=disconnect)
            with lock:
                outcomes.append(outcome)
            if outcome.kind == "rejected":
                time.sleep(rng.uniform(0.2, 1.0))

    sampler = threading.Thread(target=sample_memory, daemon=True)
    sampler.start()
    threads = [threading.Thread(target=worker, args=(index,), daemon=True) for index in range(clients)]
    for thread in threads:
        thread.start()
    # Requests still running --drain-seconds after the end are closed by the client: "cut".
    for thread in threads:
        thread.join(timeout=max(0.0, deadline + drain - time.monotonic()))
    if any(thread.is_alive() for thread in threads):
        client.cut_open_requests()
    for thread in threads:
        thread.join()
    stop_sampling.set()
    sampler.join()
    elapsed = time.monotonic() - started
    client.cut = False

    kinds = {kind: sum(1 for outcome in outcomes if outcome.kind == kind)
             for kind in ("ok", "disconnected", "rejected", "cut", "failed")}
    failures = [outcome.error for outcome in outcomes if outcome.kind == "failed"]
    alive = process_alive(pid) if pid else None
    health_status = health(url)
    result = {"clients": clients, "seconds": round(elapsed, 1), "drain_seconds": drain, "requests": len(outcomes), **kinds,
              "tokens": sum(outcome.tokens for outcome in outcomes if outcome.ok),
              "server_alive": alive, "health_after": health_status, "failure_examples": failures[:5]}
    print(f"requests {len(outcomes)} in {elapsed:.0f} s: {kinds['ok']} complete, {kinds['disconnected']} "
          f"disconnected on purpose, {kinds['rejected']} rejected with 503 (queue full), {kinds['cut']} still running "
          f"{drain:.0f} s after the end (closed), {kinds['failed']} FAILED")
    for example in failures[:5]:
        print(f"  failed: {example}")
    print(f"server {'running' if alive else 'NOT RUNNING' if alive is False else '(no PID given)'}; "
          f"/health after the load: {health_status}")
    if memory:
        warmup = min(60.0, seconds / 2)
        after = [value for at, value in memory if at >= warmup]
        early = [value for at, value in memory if warmup <= at < warmup + 10] or after[:1]
        late = [value for at, value in memory if at >= memory[-1][0] - 10] or after[-1:]
        if early and late:
            base, end = statistics.mean(early), statistics.mean(late)
            flat = end - base <= max(0.03 * base, 16.0)
            result.update(rss_start_mib=round(memory[0][1], 1), rss_after_warmup_mib=round(base, 1),
                          rss_end_mib=round(end, 1), rss_max_mib=round(max(value for _, value in memory), 1),
                          rss_flat=flat)
            print(f"resident memory: {memory[0][1]:.0f} MiB at the start, {base:.0f} MiB after {warmup:.0f} s, "
                  f"{end:.0f} MiB at the end (max {result['rss_max_mib']:.0f}): "
                  f"{'flat' if flat else 'GROWING'} after the first {warmup:.0f} s")
    return result


def level_phase(client: Client, concurrency: int, seconds: float, max_tokens: int, drain: float) -> dict:
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    started = time.monotonic()
    deadline = started + seconds

    def worker(index: int) -> None:
        request = 0
        while time.monotonic() < deadline:
            outcome = client.chat(STORY, max_tokens, stream=True, seed=1000 * index + request)
            request += 1
            with lock:
                outcomes.append(outcome)
            if outcome.kind == "failed":
                time.sleep(0.2)

    threads = [threading.Thread(target=worker, args=(index,), daemon=True) for index in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(0.0, deadline + drain - time.monotonic()))
    if any(thread.is_alive() for thread in threads):
        client.cut_open_requests()
    for thread in threads:
        thread.join()
    client.cut = False
    wall = time.monotonic() - started
    # A story prompt answered with no token at all is counted as failed (a server that ends
    # streams early must not look fast).
    done = [outcome for outcome in outcomes if outcome.ok and outcome.tokens > 0]
    ttft = [outcome.first_token - outcome.started for outcome in done if outcome.first_token is not None]
    latency = [outcome.finished - outcome.started for outcome in done]
    tokens = sum(outcome.tokens for outcome in done)
    decode = [(outcome.tokens - 1) / (outcome.finished - outcome.first_token) for outcome in done
              if outcome.first_token is not None and outcome.tokens > 1 and outcome.finished > outcome.first_token]
    return {"clients": concurrency, "seconds": round(wall, 1), "requests": len(done),
            "failed": sum(1 for outcome in outcomes if outcome.kind == "failed" or (outcome.ok and outcome.tokens == 0)),
            "cut": sum(1 for outcome in outcomes if outcome.kind == "cut"), "completion_tokens": tokens,
            "aggregate_tokens_per_s": round(tokens / wall, 2) if wall > 0 else None,
            "ttft_p50_s": percentile(ttft, 0.5), "ttft_p99_s": percentile(ttft, 0.99),
            "latency_p50_s": percentile(latency, 0.5),
            "per_request_decode_tokens_per_s_p50": percentile(decode, 0.5)}


def format_seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running server")
    parser.add_argument("--pid", type=int, help="the running server's PID (memory samples, crash check)")
    parser.add_argument("--loom", type=Path, help="start `loom serve` with this binary instead")
    parser.add_argument("--model", type=Path, help="the model directory for `loom serve`")
    parser.add_argument("--server-arg", action="append", default=[], help="one more argument for `loom serve`")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--model-name", default=None, help="the `model` field of requests (default: the server's first)")
    parser.add_argument("--phases", default="load,levels")
    parser.add_argument("--load-clients", type=int, default=64)
    parser.add_argument("--load-seconds", type=float, default=120)
    parser.add_argument("--drain-seconds", type=float, default=60,
                        help="after the load, how long running requests may take before they are closed")
    parser.add_argument("--levels", default="1,4,16")
    parser.add_argument("--level-seconds", type=float, default=30)
    parser.add_argument("--max-tokens", type=int, default=128, help="new tokens per request in the levels phase")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per request")
    parser.add_argument("--label", default="server")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    if not args.url and not (args.loom and args.model):
        parser.error("give --url (and --pid), or --loom and --model")

    server = None
    if args.loom:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Tests" / "Serve"))
        from serve_process import LoomServer
        server = LoomServer(args.loom, args.model, api_key=args.api_key, extra_args=args.server_arg).start()
        url, pid = server.url, server.pid
    else:
        url, pid = args.url.rstrip("/"), args.pid
    report: dict = {"label": args.label, "url": url}
    status = 0
    try:
        model = args.model_name
        if model is None:
            parsed = urllib.parse.urlsplit(url)
            connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
            headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
            connection.request("GET", "/v1/models", headers=headers)
            model = json.loads(connection.getresponse().read())["data"][0]["id"]
            connection.close()
        report["model"] = model
        client = Client(url, args.api_key, model, args.timeout)
        phases = set(args.phases.split(","))
        if "load" in phases:
            load = load_phase(client, url, pid, args.load_clients, args.load_seconds, args.drain_seconds)
            report["load"] = load
            if load["failed"] or load["server_alive"] is False or load["health_after"] != 200 \
                    or load.get("rss_flat") is False:
                status = 1
        if "levels" in phases:
            print(f"== levels: streaming clients, {args.max_tokens} new tokens a request, {args.level_seconds:.0f} s "
                  f"a level ({args.label})")
            print(f"{'clients':>7} {'requests':>8} {'failed':>6} {'tokens/s':>9} {'TTFT p50':>9} {'TTFT p99':>9} "
                  f"{'latency p50':>11} {'decode/req p50':>14}")
            report["levels"] = []
            for concurrency in [int(value) for value in args.levels.split(",") if value]:
                level = level_phase(client, concurrency, args.level_seconds, args.max_tokens, args.drain_seconds)
                report["levels"].append(level)
                decode = level["per_request_decode_tokens_per_s_p50"]
                print(f"{concurrency:>7} {level['requests']:>8} {level['failed']:>6} "
                      f"{level['aggregate_tokens_per_s'] or 0:>9.1f} {format_seconds(level['ttft_p50_s']):>9} "
                      f"{format_seconds(level['ttft_p99_s']):>9} {format_seconds(level['latency_p50_s']):>11} "
                      f"{decode or 0:>14.1f}", flush=True)
                if level["failed"]:
                    status = 1
    finally:
        if server is not None:
            exit_status = server.stop()
            print(f"server stopped (exit status {exit_status}); log {server.log_path}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(f"serve load ({args.label}): {'passed' if status == 0 else 'FAILED'}")
    return status


if __name__ == "__main__":
    sys.exit(main())
