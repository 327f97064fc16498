#!/usr/bin/env python3
"""`loom serve` against the official `openai` Python client (and raw HTTP where the client
cannot send what is needed): the OpenAI API as existing clients use it.

    python Tests/Serve/openai_client_check.py --loom .build/debug/loom --model DIR
    python Tests/Serve/openai_client_check.py --url http://127.0.0.1:8000 [--api-key K]   # a running server

With --loom the script starts `loom serve --model DIR --port FREE --api-key KEY --parallel 8`
itself, waits for /health, runs every check, and always stops the server. With --url it checks a
server that is already running (any OpenAI-compatible one, for comparison).

Checks: /health, GET /v1/models, 401 without the key (and /health open), a plain and a streaming
chat completion (the streamed text equals the plain one at temperature 0), a completion (plain and
streamed), `stream_options.include_usage` (the usage chunk has empty choices and comes right
before [DONE]), `n=2`, `response_format=json_object` output that json.loads parses, seeded
requests that repeat exactly, `stop` strings cut and not returned, `logprobs`/`top_logprobs`,
the 4xx error types and OpenAI error bodies for bad requests (malformed JSON, missing messages,
unknown role, empty messages, wrongly typed field, max_tokens 0 and past the context, a prompt past
the context, an oversized body), that the server still serves after them and after a client
disconnects mid-stream, /metrics, /tokenize and /detokenize, the prompt cache (a conversation's second turn reports
usage.prompt_tokens_details.cached_tokens > 0) and batch invariance (the same seeded request alone
and among 7 concurrent others gives the same tokens).

Each check prints one line; the last line is `serve: N passed, F failed`; the exit status is 1
when a check failed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import sys
import threading
import time
import traceback
import urllib.parse
from pathlib import Path

import openai

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_process import LoomServer  # noqa: E402

QUESTION = "What is the capital of France?"
STORY = "Write a short story about a dragon who learns to bake bread."


class Context:
    """What the checks share: the server's address, the key, a client, the model's id and context."""

    def __init__(self, url: str, api_key: str | None, server: LoomServer | None, timeout: float):
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.server = server
        self.timeout = timeout
        # max_retries=0: a failed request must show, not be retried until it passes.
        self.client = openai.OpenAI(base_url=self.url + "/v1", api_key=api_key or "unused",
                                    max_retries=0, timeout=timeout)
        self.model = "unknown"
        self.context_length: int | None = None

    def chat(self, **kwargs):
        kwargs.setdefault("model", self.model)
        return self.client.chat.completions.create(**kwargs)

    def complete(self, **kwargs):
        kwargs.setdefault("model", self.model)
        return self.client.completions.create(**kwargs)

    def headers(self, with_key: bool = True) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if with_key and self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def raw(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
            timeout: float | None = None) -> tuple[int, bytes]:
        """One HTTP request without the client: (status, body)."""
        parsed = urllib.parse.urlsplit(self.url)
        connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=timeout or self.timeout)
        try:
            connection.request(method, path, body=body, headers=headers if headers is not None else self.headers())
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def raw_events(self, path: str, payload: dict) -> list[str]:
        """The `data:` payloads of a streamed response, in order (`[DONE]` included)."""
        status, body = self.raw("POST", path, json.dumps(payload).encode())
        if status != 200:
            raise AssertionError(f"HTTP {status}: {body[:300]!r}")
        events = []
        for line in body.decode().splitlines():
            if line.startswith("data:"):
                events.append(line[5:].strip())
        return events


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.failures: list[str] = []

    def run(self, name: str, function, context: Context) -> None:
        started = time.monotonic()
        try:
            note = function(context)
        except Exception as error:  # a check fails on any exception: the line says which
            self.failed += 1
            detail = str(error) if isinstance(error, AssertionError) else f"{type(error).__name__}: {error}"
            self.failures.append(f"{name}: {detail}")
            print(f"FAIL {name} ({time.monotonic() - started:.1f} s): {detail}", flush=True)
            if not isinstance(error, (AssertionError, openai.APIError)):
                traceback.print_exc(limit=3)
            return
        self.passed += 1
        print(f"ok   {name} ({time.monotonic() - started:.1f} s){': ' + note if note else ''}", flush=True)


def expect_equal(actual, expected, what: str) -> None:
    if actual != expected:
        raise AssertionError(f"{what}: expected {expected!r}, got {actual!r}")


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def check_error_body(body: object, what: str) -> str:
    """An OpenAI error body's inner object: message (non-empty text), type, param and code present."""
    expect(isinstance(body, dict), f"{what}: the error body is not a JSON object: {body!r}")
    for key in ("message", "type", "param", "code"):
        expect(key in body, f"{what}: the error object lacks {key!r}: {body!r}")
    expect(isinstance(body["message"], str) and body["message"].strip() != "",
           f"{what}: the error message is empty: {body!r}")
    return body["message"]


def expect_api_error(error_type: type, call, what: str) -> str:
    """Runs call, which must raise error_type (an openai status error); returns the error message."""
    try:
        result = call()
    except error_type as error:
        return check_error_body(error.body, what)
    except openai.APIStatusError as error:
        raise AssertionError(f"{what}: expected {error_type.__name__}, got {type(error).__name__} "
                             f"(HTTP {error.status_code}): {error.body!r}") from None
    raise AssertionError(f"{what}: expected {error_type.__name__}, but the request succeeded: {str(result)[:200]}")


def expect_raw_error(context: Context, status: int, body: bytes, what: str, allowed=(400,)) -> str:
    expect(status in allowed, f"{what}: expected HTTP {'/'.join(map(str, allowed))}, got {status}: {body[:200]!r}")
    try:
        parsed = json.loads(body)
    except ValueError:
        raise AssertionError(f"{what}: the error body is not JSON: {body[:200]!r}") from None
    expect(isinstance(parsed, dict) and "error" in parsed, f"{what}: no \"error\" in the body: {parsed!r}")
    return check_error_body(parsed["error"], what)


# MARK: - Checks


def check_health(context: Context):
    status, body = context.raw("GET", "/health", headers={})
    expect_equal(status, 200, "GET /health without a key")


def check_models(context: Context):
    models = context.client.models.list()
    expect(len(models.data) == 1, f"expected one model, got {[model.id for model in models.data]}")
    model = models.data[0]
    expect(isinstance(model.id, str) and model.id != "", f"model id {model.id!r}")
    expect_equal(model.object, "model", "model object")
    context.model = model.id
    extra = model.model_extra or {}
    for key in ("context_length", "max_model_len", "context_window", "n_ctx"):
        if isinstance(extra.get(key), int):
            context.context_length = extra[key]
            break
    return f"{model.id!r}, context {context.context_length}"


def check_auth(context: Context):
    if not context.api_key:
        return "skipped: the server has no key"
    unauthenticated = openai.OpenAI(base_url=context.url + "/v1", api_key="wrong-key", max_retries=0, timeout=30)
    expect_api_error(openai.AuthenticationError, lambda: unauthenticated.models.list(), "GET /v1/models with a wrong key")
    expect_api_error(openai.AuthenticationError,
                     lambda: unauthenticated.chat.completions.create(
                         model=context.model, messages=[{"role": "user", "content": "hi"}], max_tokens=2),
                     "chat with a wrong key")
    for path, method, body in (("/v1/models", "GET", None),
                               ("/v1/chat/completions", "POST", b'{"messages":[{"role":"user","content":"hi"}]}'),
                               ("/metrics", "GET", None)):
        status, response = context.raw(method, path, body, headers={"Content-Type": "application/json"})
        expect_raw_error(context, status, response, f"{method} {path} without Authorization", allowed=(401,))
    status, _ = context.raw("GET", "/health", headers={})
    expect_equal(status, 200, "GET /health without a key")


def check_chat(context: Context):
    response = context.chat(messages=[{"role": "user", "content": QUESTION}], max_tokens=32, temperature=0)
    expect_equal(response.object, "chat.completion", "object")
    expect_equal(len(response.choices), 1, "number of choices")
    choice = response.choices[0]
    expect_equal(choice.index, 0, "choice index")
    expect_equal(choice.message.role, "assistant", "message role")
    expect(choice.message.content, f"empty answer: {choice.message.content!r}")
    expect(choice.finish_reason in ("stop", "length"), f"finish_reason {choice.finish_reason!r}")
    usage = response.usage
    expect(usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0, f"usage {usage}")
    expect_equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens, "total_tokens")
    if choice.finish_reason == "length":
        expect_equal(usage.completion_tokens, 32, "completion_tokens when finish_reason is length")
    context.greedy_answer = choice.message.content
    return repr(choice.message.content[:60])


def check_chat_stream(context: Context):
    stream = context.chat(messages=[{"role": "user", "content": QUESTION}], max_tokens=32, temperature=0, stream=True)
    text, roles, finish_reasons, chunks = "", [], [], 0
    ids = set()
    for chunk in stream:
        chunks += 1
        ids.add(chunk.id)
        expect_equal(chunk.object, "chat.completion.chunk", "chunk object")
        expect(chunk.usage is None, f"a usage chunk without include_usage: {chunk.usage}")
        for choice in chunk.choices:
            if choice.delta.role:
                roles.append(choice.delta.role)
            text += choice.delta.content or ""
            if choice.finish_reason:
                finish_reasons.append(choice.finish_reason)
    expect_equal(roles, ["assistant"], "delta roles (once, in the first chunk)")
    expect(len(finish_reasons) == 1 and finish_reasons[0] in ("stop", "length"), f"finish reasons {finish_reasons}")
    expect_equal(len(ids), 1, "chunk ids (one per response)")
    expect_equal(text, getattr(context, "greedy_answer", text), "streamed text against the plain answer (temperature 0)")
    return f"{chunks} chunks"


def check_completion(context: Context):
    prompt = "Once upon a time, in a small village by the sea,"
    response = context.complete(prompt=prompt, max_tokens=16, temperature=0)
    expect_equal(response.object, "text_completion", "object")
    choice = response.choices[0]
    expect(choice.text, f"empty completion {choice.text!r}")
    expect(choice.finish_reason in ("stop", "length"), f"finish_reason {choice.finish_reason!r}")
    expect(response.usage.prompt_tokens > 0 and response.usage.completion_tokens > 0, f"usage {response.usage}")
    streamed = "".join(chunk.choices[0].text for chunk in
                       context.complete(prompt=prompt, max_tokens=16, temperature=0, stream=True) if chunk.choices)
    expect_equal(streamed, choice.text, "streamed completion against the plain one (temperature 0)")
    return repr(choice.text[:60])


def check_include_usage(context: Context):
    stream = context.chat(messages=[{"role": "user", "content": QUESTION}], max_tokens=12, temperature=0, stream=True,
                          stream_options={"include_usage": True})
    chunks = list(stream)
    expect(len(chunks) >= 2, f"{len(chunks)} chunks")
    last = chunks[-1]
    expect(last.usage is not None, "the last chunk has no usage")
    expect_equal(last.choices, [], "choices of the usage chunk")
    for chunk in chunks[:-1]:
        expect(chunk.usage is None, f"usage before the last chunk: {chunk}")
    pieces = sum(1 for chunk in chunks for choice in chunk.choices if choice.delta.content)
    expect(0 < last.usage.completion_tokens <= 12, f"completion_tokens {last.usage.completion_tokens}")
    expect(pieces <= last.usage.completion_tokens, f"{pieces} content chunks for {last.usage.completion_tokens} tokens")
    expect_equal(last.usage.total_tokens, last.usage.prompt_tokens + last.usage.completion_tokens, "total_tokens")
    # On the wire: the usage chunk is the last data line before [DONE].
    events = context.raw_events("/v1/chat/completions", {
        "model": context.model, "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 12,
        "temperature": 0, "stream": True, "stream_options": {"include_usage": True}})
    expect_equal(events[-1], "[DONE]", "last event")
    usage_chunk = json.loads(events[-2])
    expect(usage_chunk.get("choices") == [] and usage_chunk.get("usage"), f"event before [DONE]: {events[-2]}")
    return f"usage {last.usage.prompt_tokens}+{last.usage.completion_tokens}"


def check_n(context: Context):
    response = context.chat(messages=[{"role": "user", "content": STORY}], max_tokens=24, temperature=1.0, seed=7, n=2)
    expect_equal(sorted(choice.index for choice in response.choices), [0, 1], "choice indexes")
    expect(all(choice.message.content for choice in response.choices), "an empty choice")
    expect(response.choices[0].message.content != response.choices[1].message.content,
           f"both choices are the same text at temperature 1: {response.choices[0].message.content!r}")
    # Streamed, each chunk names its choice; each index ends once.
    texts, finished = {0: "", 1: ""}, []
    for chunk in context.chat(messages=[{"role": "user", "content": STORY}], max_tokens=16, temperature=1.0, seed=7,
                              n=2, stream=True):
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finished.append(choice.index)
    expect_equal(sorted(finished), [0, 1], "streamed choices that finished")
    expect(texts[0] and texts[1], f"streamed texts {texts}")
    return f"usage {response.usage.completion_tokens} completion tokens"


def check_json_object(context: Context):
    response = context.chat(messages=[
        {"role": "system", "content": "You answer in JSON."},
        {"role": "user", "content": "Describe a cat as a JSON object with the keys name, age and color."}],
        max_tokens=200, temperature=0, response_format={"type": "json_object"})
    choice = response.choices[0]
    expect_equal(choice.finish_reason, "stop", f"finish_reason (text {choice.message.content!r})")
    try:
        value = json.loads(choice.message.content)
    except ValueError as error:
        raise AssertionError(f"json.loads fails ({error}) on {choice.message.content!r}") from None
    expect(isinstance(value, dict), f"json_object output is not an object: {value!r}")
    # Sampled too: constrained decoding must hold for any sample, not only the greedy one.
    sampled = context.chat(messages=[{"role": "user", "content": "Give me a JSON object about a city."}],
                           max_tokens=200, temperature=1.0, seed=3, response_format={"type": "json_object"})
    if sampled.choices[0].finish_reason == "stop":
        expect(isinstance(json.loads(sampled.choices[0].message.content), dict),
               f"sampled output {sampled.choices[0].message.content!r}")
    return repr(choice.message.content[:80])


def check_seed(context: Context):
    def sample(seed: int) -> str:
        return context.chat(messages=[{"role": "user", "content": STORY}], max_tokens=32, temperature=1.0,
                            top_p=1.0, seed=seed).choices[0].message.content
    first, second = sample(42), sample(42)
    expect_equal(second, first, "the same seeded request twice")
    others = [sample(43), sample(44)]
    expect(any(other != first for other in others), f"seeds 42, 43, 44 all gave {first!r}")
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in context.chat(
        messages=[{"role": "user", "content": STORY}], max_tokens=32, temperature=1.0, top_p=1.0, seed=42, stream=True)
        if chunk.choices)
    expect_equal(streamed, first, "the same seeded request streamed")


def check_stop(context: Context):
    messages = [{"role": "user", "content": STORY}]
    full = context.chat(messages=messages, max_tokens=48, temperature=0).choices[0].message.content
    words = [index for index in range(1, len(full)) if full[index] == " " and full[index - 1] != " "]
    expect(len(words) >= 4, f"the answer is too short to pick a stop string: {full!r}")
    start = words[len(words) // 2]
    stop = full[start:start + 5]
    expected = full[:full.index(stop)]
    response = context.chat(messages=messages, max_tokens=48, temperature=0, stop=[stop, "\u2603never"])
    expect_equal(response.choices[0].message.content, expected, f"text with stop {stop!r}")
    expect_equal(response.choices[0].finish_reason, "stop", "finish_reason at a stop string")
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in
                       context.chat(messages=messages, max_tokens=48, temperature=0, stop=stop, stream=True)
                       if chunk.choices)
    expect_equal(streamed, expected, f"streamed text with stop {stop!r} (a string, not a list)")
    completion = context.complete(prompt="1, 2, 3, 4, 5, 6,", max_tokens=24, temperature=0, stop=["9"])
    expect("9" not in completion.choices[0].text, f"completion with stop '9': {completion.choices[0].text!r}")
    return f"stop {stop!r}"


def check_logit_bias(context: Context):
    """logit_bias through the client: +100 on one token makes the greedy answer that token repeated,
    -100 on the greedy answer's first token makes it start with another; tools are refused."""
    status, body = context.raw("POST", "/tokenize", json.dumps({"prompt": " banana"}).encode())
    expect_equal(status, 200, f"POST /tokenize: {body[:200]!r}")
    banana = json.loads(body)["tokens"]
    expect_equal(len(banana), 1, f"' banana' as one SmolLM2 token: {banana}")
    messages = [{"role": "user", "content": QUESTION}]
    forced = context.chat(messages=messages, max_tokens=3, temperature=0, logit_bias={str(banana[0]): 100})
    expect_equal(forced.choices[0].message.content, " banana" * 3, "answer with +100 on ' banana'")
    plain = context.chat(messages=messages, max_tokens=4, temperature=0, logprobs=True)
    first = plain.choices[0].logprobs.content[0]
    status, body = context.raw("POST", "/tokenize", json.dumps({"prompt": first.token}).encode())
    first_ids = json.loads(body)["tokens"]
    expect_equal(len(first_ids), 1, f"the first answer token {first.token!r} as one token: {first_ids}")
    banned = context.chat(messages=messages, max_tokens=4, temperature=0, logprobs=True, logit_bias={str(first_ids[0]): -100})
    expect(banned.choices[0].logprobs.content[0].token != first.token,
           f"-100 on {first.token!r} still starts the answer with it: {banned.choices[0].message.content!r}")
    message = expect_api_error(openai.BadRequestError, lambda: context.chat(
        messages=messages, max_tokens=4, tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]),
        "a request with tools")
    return f"forced {forced.choices[0].message.content!r}; banned {first.token!r}; tools: {message[:60]}"


def check_logprobs(context: Context):
    response = context.chat(messages=[{"role": "user", "content": QUESTION}], max_tokens=8, temperature=0,
                            logprobs=True, top_logprobs=3)
    choice = response.choices[0]
    expect(choice.logprobs is not None and choice.logprobs.content, f"logprobs {choice.logprobs}")
    entries = choice.logprobs.content
    expect_equal(len(entries), response.usage.completion_tokens, "logprob entries against completion tokens")
    expect_equal("".join(entry.token for entry in entries), choice.message.content, "the tokens joined")
    for entry in entries:
        expect(entry.logprob <= 1e-6, f"logprob {entry.logprob} > 0")
        expect_equal(len(entry.top_logprobs), 3, "top_logprobs per token")
        values = [top.logprob for top in entry.top_logprobs]
        expect(values == sorted(values, reverse=True), f"top_logprobs not in descending order: {values}")
        # Greedy: the chosen token is the most likely one.
        expect(abs(entry.logprob - values[0]) < 1e-4, f"greedy token {entry.token!r} logprob {entry.logprob} "
                                                      f"is not the top one {values[0]}")
    completion = context.complete(prompt="The capital of France is", max_tokens=4, temperature=0, logprobs=2)
    legacy = completion.choices[0].logprobs
    expect(legacy is not None and len(legacy.tokens) == completion.usage.completion_tokens,
           f"completion logprobs {legacy}")
    expect(all(len(top) == 2 for top in legacy.top_logprobs), f"completion top_logprobs {legacy.top_logprobs}")
    return " ".join(f"{entry.token!r}:{entry.logprob:.3f}" for entry in entries[:4])


def check_prompt_cache(context: Context):
    system = {"role": "system", "content": "You are a helpful assistant who answers briefly."}
    first_turn = [system, {"role": "user", "content": QUESTION}]
    first = context.chat(messages=first_turn, max_tokens=24, temperature=0)
    second_turn = first_turn + [{"role": "assistant", "content": first.choices[0].message.content},
                                {"role": "user", "content": "And what is the capital of Italy?"}]
    second = context.chat(messages=second_turn, max_tokens=24, temperature=0)
    details = second.usage.prompt_tokens_details
    cached = details.cached_tokens if details is not None else None
    expect(cached is not None and cached > 0, f"second turn: usage.prompt_tokens_details {details}")
    expect(cached < second.usage.prompt_tokens, f"cached {cached} of {second.usage.prompt_tokens} prompt tokens")
    expect(second.usage.prompt_tokens > first.usage.prompt_tokens, "the second turn's prompt is longer")
    # The cache must not change the answer: asked again, the whole prompt is now cached and the
    # greedy text must stay the same.
    again = context.chat(messages=second_turn, max_tokens=24, temperature=0)
    expect_equal(again.choices[0].message.content, second.choices[0].message.content, "the same request, cached")
    return f"{cached} of {second.usage.prompt_tokens} prompt tokens cached"


def answer_tokens(context: Context, request: dict) -> tuple[list[str], list[float], str]:
    response = context.chat(**request)
    choice = response.choices[0]
    entries = choice.logprobs.content if choice.logprobs and choice.logprobs.content else []
    return [entry.token for entry in entries], [entry.logprob for entry in entries], choice.message.content


def check_batch_invariance(context: Context):
    target = dict(messages=[{"role": "user", "content": STORY}], max_tokens=40, temperature=0.9, seed=1234,
                  logprobs=True)
    alone_tokens, alone_logprobs, alone_text = answer_tokens(context, target)
    expect(alone_tokens or alone_text, "empty answer alone")
    prompts = ["Explain photosynthesis to a child.", "List five fruits.", "What is 12 times 12?",
               "Write a haiku about autumn leaves falling on a quiet pond in the early morning light.",
               "Translate 'good morning' into French.", "Why is the sky blue?", "Name three planets."]
    errors: list[str] = []

    def other(index: int, started: threading.Event) -> None:
        try:
            stream = context.chat(messages=[{"role": "user", "content": prompts[index]}], max_tokens=32 + 16 * index,
                                  temperature=0.7, seed=index, stream=True)
            for chunk in stream:
                started.set()
        except Exception as error:  # reported as a failure of the check
            errors.append(f"other request {index}: {error}")
        finally:
            started.set()

    results = {}
    for placement in ("joins a running batch", "starts the batch"):
        events = [threading.Event() for _ in prompts]
        threads = [threading.Thread(target=other, args=(index, events[index])) for index in range(len(prompts))]
        if placement == "starts the batch":
            holder = {}
            first = threading.Thread(target=lambda: holder.update(result=answer_tokens(context, target)))
            first.start()
            time.sleep(0.05)
            for thread in threads:
                thread.start()
            first.join()
            results[placement] = holder.get("result")
        else:
            for thread in threads:
                thread.start()
            for event in events:
                event.wait(timeout=context.timeout)
            results[placement] = answer_tokens(context, target)
        for thread in threads:
            thread.join()
    expect(not errors, "; ".join(errors))
    notes = []
    for placement, result in results.items():
        expect(result is not None, f"{placement}: no answer")
        tokens, logprobs, text = result
        expect_equal(text, alone_text, f"the seeded request's text when it {placement}")
        expect_equal(tokens, alone_tokens, f"the seeded request's tokens when it {placement}")
        if logprobs and alone_logprobs:
            largest = max(abs(a - b) for a, b in zip(logprobs, alone_logprobs))
            notes.append(f"{placement}: logprobs differ by at most {largest:.2e}")
    return f"{len(alone_tokens)} tokens identical; " + "; ".join(notes)


def check_bad_requests(context: Context):
    messages = [{"role": "user", "content": "hi"}]
    bad = openai.BadRequestError
    notes = []
    status, body = context.raw("POST", "/v1/chat/completions", b'{"model": "x", "messages": [{"role": "user", ')
    notes.append(("malformed JSON", expect_raw_error(context, status, body, "malformed JSON")))
    status, body = context.raw("POST", "/v1/chat/completions", b'[1, 2, 3]')
    notes.append(("a JSON array as the body", expect_raw_error(context, status, body, "a JSON array as the body")))
    cases = [
        ("missing messages", lambda: context.client.post("/chat/completions", cast_to=object,
                                                         body={"model": context.model, "max_tokens": 4})),
        ("missing prompt", lambda: context.client.post("/completions", cast_to=object,
                                                       body={"model": context.model, "max_tokens": 4})),
        ("unknown role", lambda: context.chat(messages=[{"role": "wizard", "content": "hi"}], max_tokens=4)),
        ("empty messages", lambda: context.chat(messages=[], max_tokens=4)),
        ("messages not a list", lambda: context.chat(messages="hi", max_tokens=4)),
        ("content of the wrong type", lambda: context.chat(messages=[{"role": "user", "content": 42}], max_tokens=4)),
        ("temperature as text", lambda: context.chat(messages=messages, max_tokens=4, temperature="hot")),
        ("max_tokens 0", lambda: context.chat(messages=messages, max_tokens=0)),
        ("max_tokens -5", lambda: context.chat(messages=messages, max_tokens=-5)),
        ("n 0", lambda: context.chat(messages=messages, max_tokens=4, n=0)),
        ("response_format of an unknown type", lambda: context.chat(messages=messages, max_tokens=4,
                                                                     response_format={"type": "yaml"})),
    ]
    if context.context_length:
        cases.append(("max_tokens past the context", lambda: context.chat(
            messages=messages, max_tokens=context.context_length + 1)))
        long_prompt = "hello " * (context.context_length + 16)
        cases.append(("a prompt past the context", lambda: context.chat(
            messages=[{"role": "user", "content": long_prompt}], max_tokens=4)))
        cases.append(("a completion prompt past the context", lambda: context.complete(
            prompt=long_prompt, max_tokens=4)))
    else:
        notes.append(("the context checks", "skipped: /v1/models gives no context length"))
    for what, call in cases:
        notes.append((what, expect_api_error(bad, call, what)))
    try:
        context.client.get("/no-such-endpoint", cast_to=object)
        raise AssertionError("GET /v1/no-such-endpoint succeeded")
    except openai.NotFoundError:
        pass
    for what, message in notes:
        print(f"       {what}: {message[:110]!r}")
    return f"{len(notes)} bad requests answered with OpenAI error bodies"


def check_oversized_body(context: Context):
    """A 64 MiB request body: a 4xx with an OpenAI error body (413 or 400), and the server lives on."""
    size = 64 << 20
    prefix = b'{"messages": [{"role": "user", "content": "'
    suffix = b'"}], "max_tokens": 4}'
    parsed = urllib.parse.urlsplit(context.url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
    headers = context.headers()
    connection.putrequest("POST", "/v1/chat/completions")
    for key, value in headers.items():
        connection.putheader(key, value)
    connection.putheader("Content-Length", str(size))
    connection.endheaders()
    sent = 0
    try:
        connection.send(prefix)
        sent += len(prefix)
        block = b"a" * (1 << 20)
        while sent + len(block) + len(suffix) <= size:
            connection.send(block)
            sent += len(block)
        connection.send(b"a" * (size - sent - len(suffix)) + suffix)
        sent = size
    except OSError:
        pass  # the server may answer and close before reading it all: the answer is what counts
    try:
        response = connection.getresponse()
        status, body = response.status, response.read()
    except OSError as error:
        raise AssertionError(f"no HTTP answer to a {size >> 20} MiB body (sent {sent >> 20} MiB): {error}") from None
    finally:
        connection.close()
    message = expect_raw_error(context, status, body, "oversized body", allowed=(413, 400))
    return f"HTTP {status} after {sent >> 20} MiB sent: {message[:80]!r}"


def check_disconnect(context: Context):
    """A client that disconnects mid-stream; then the server still answers."""
    parsed = urllib.parse.urlsplit(context.url)
    payload = json.dumps({"model": context.model, "messages": [{"role": "user", "content": STORY}],
                          "max_tokens": 400, "stream": True}).encode()
    for _ in range(3):
        with socket.create_connection((parsed.hostname, parsed.port), timeout=context.timeout) as connection:
            request = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {parsed.hostname}\r\n"
                       f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n")
            if context.api_key:
                request += f"Authorization: Bearer {context.api_key}\r\n"
            connection.sendall(request.encode() + b"\r\n" + payload)
            received = b""
            while received.count(b"data:") < 3:
                data = connection.recv(4096)
                expect(data != b"", f"the server closed the stream early: {received[:300]!r}")
                received += data
    check_still_serving(context)


def check_still_serving(context: Context):
    if context.server is not None:
        expect(context.server.alive(), f"the server process exited with status {context.server.process.returncode}")
    status, _ = context.raw("GET", "/health", headers={})
    expect_equal(status, 200, "GET /health")
    response = context.chat(messages=[{"role": "user", "content": QUESTION}], max_tokens=8, temperature=0)
    expect(response.choices[0].message.content, "an empty answer")
    if hasattr(context, "greedy_answer"):
        expect(context.greedy_answer.startswith(response.choices[0].message.content),
               f"the first answer {context.greedy_answer!r} does not start with {response.choices[0].message.content!r}")


def check_metrics(context: Context):
    status, body = context.raw("GET", "/metrics")
    expect_equal(status, 200, "GET /metrics")
    samples = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            float(value)  # every sample line ends with a number
            samples[name] = value
    expect(any("#" in line and "TYPE" in line for line in body.decode().splitlines()), "no # TYPE lines")
    expect(len(samples) >= 4, f"only {len(samples)} samples: {body[:300]!r}")
    return f"{len(samples)} samples"


def check_tokenize(context: Context):
    """POST /tokenize and /detokenize round trip; a chat's token count equals the prompt_tokens it is billed."""
    text = "Hello, world! Ünïcode 机器学习 🚀 and digits 2024."
    status, body = context.raw("POST", "/tokenize", json.dumps({"prompt": text}).encode())
    expect_equal(status, 200, f"POST /tokenize: {body[:200]!r}")
    tokenized = json.loads(body)
    tokens = tokenized["tokens"]
    expect(tokens and all(isinstance(token, int) for token in tokens), f"tokens {tokens}")
    expect_equal(tokenized.get("count"), len(tokens), "count")
    status, body = context.raw("POST", "/detokenize", json.dumps({"tokens": tokens}).encode())
    expect_equal(status, 200, f"POST /detokenize: {body[:200]!r}")
    expect_equal(json.loads(body).get("prompt"), text, "detokenized text")
    messages = [{"role": "user", "content": QUESTION}]
    status, body = context.raw("POST", "/tokenize", json.dumps({"messages": messages}).encode())
    expect_equal(status, 200, f"POST /tokenize with messages: {body[:200]!r}")
    usage = context.chat(messages=messages, max_tokens=1, temperature=0).usage
    expect_equal(json.loads(body)["count"], usage.prompt_tokens, "chat tokens counted by /tokenize against usage")
    status, body = context.raw("POST", "/detokenize", b'{"tokens": [-1]}')
    expect_raw_error(context, status, body, "detokenize of -1")
    return f"{len(tokens)} tokens"


CHECKS = [
    ("GET /health", check_health),
    ("GET /v1/models", check_models),
    ("401 without the key, /health open", check_auth),
    ("chat completion", check_chat),
    ("streaming chat completion", check_chat_stream),
    ("completion (plain and streamed)", check_completion),
    ("stream_options.include_usage", check_include_usage),
    ("n=2", check_n),
    ("response_format json_object", check_json_object),
    ("seeded requests repeat", check_seed),
    ("stop strings", check_stop),
    ("logprobs and top_logprobs", check_logprobs),
    ("logit_bias forces and bans tokens; tools refused", check_logit_bias),
    ("prompt cache on a conversation's second turn", check_prompt_cache),
    ("batch invariance (alone and among 7 others)", check_batch_invariance),
    ("bad requests: 4xx with OpenAI error bodies", check_bad_requests),
    ("oversized body", check_oversized_body),
    ("still serving after the bad requests", check_still_serving),
    ("client disconnecting mid-stream", check_disconnect),
    ("GET /metrics", check_metrics),
    ("POST /tokenize and /detokenize", check_tokenize),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loom", type=Path, help="the loom binary (starts `loom serve` itself)")
    parser.add_argument("--model", type=Path, help="the model directory for `loom serve`")
    parser.add_argument("--url", help="check a server that is already running instead")
    parser.add_argument("--api-key", default=None, help="the key (with --loom: default a fixed test key)")
    parser.add_argument("--server-arg", action="append", default=[], help="one more argument for `loom serve`")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per request")
    parser.add_argument("--only", default=None, help="run only the checks whose name contains this text")
    args = parser.parse_args()
    if not args.url and not (args.loom and args.model):
        parser.error("give --loom and --model, or --url")

    server = None
    checks = Checks()
    try:
        if args.url:
            url, api_key = args.url, args.api_key
        else:
            api_key = args.api_key or "loom-test-key"
            server = LoomServer(args.loom, args.model, api_key=api_key,
                                extra_args=["--parallel", "8", *args.server_arg]).start()
            url = server.url
        if server is None:
            print(f"checking the running server at {url}", flush=True)
        context = Context(url, api_key, server, args.timeout)
        for name, function in CHECKS:
            if args.only and args.only not in name and function not in (check_models,):
                continue
            checks.run(name, function, context)
        if server is not None:
            checks.run("the server process is alive at the end", lambda _: expect(
                server.alive(), f"exit status {server.process.returncode}"), context)
    except Exception as error:
        checks.failed += 1
        print(f"FAIL could not run the checks: {error}", flush=True)
    finally:
        if server is not None:
            status = server.stop()
            print(f"server stopped (exit status {status}); log {server.log_path}")
    print(f"serve: {checks.passed} passed, {checks.failed} failed", flush=True)
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
