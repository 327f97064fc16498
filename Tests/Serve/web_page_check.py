#!/usr/bin/env python3
"""The chat page of `loom serve` (GET /) in a real browser: headless Chromium through selenium.

    python Tests/Serve/web_page_check.py --loom .build/debug/loom --model DIR [--screenshot .build/web_page.png]
    python Tests/Serve/web_page_check.py --url http://127.0.0.1:8080 [--api-key K]   # a running server

With --loom the script starts `loom serve --api-key KEY` on a free port itself and always stops it.
Steps, each printed:
 1. the page loads; without the key it shows the server's 401 message; with the key typed into
    the settings it shows the model's name from GET /v1/models;
 2. a question typed and sent with Enter: the answer streams in (the answer element changes
    several times before it is done), equals the server's own greedy answer to the same request,
    and is followed by a tokens/s line;
 3. a second turn: the page's answer equals the server's answer to the whole conversation
    (first question, first answer, second question), and its prompt is longer by at least the
    first turn; the markup typed in it is shown as text, no element is created;
 4. a screenshot of the conversation to --screenshot;
 5. the stop button ends a long answer, which keeps its text and says it was stopped;
 6. a bad setting (max tokens 0) shows the server's error message.

Needs Debian's `chromium` and `chromium-driver` and PyPI's `selenium`. The last line is
`web page: N passed, F failed`; the exit status is 1 when a step failed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.support.ui import WebDriverWait

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_process import LoomServer  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
FIRST_QUESTION = "What is the capital of France?"
SECOND_QUESTION = "And what is the capital of Italy? <b>Answer</b> in one <img src=x onerror=alert(1)> sentence."
MAX_TOKENS = 24
TOP_P = 0.95

# Counts how often each assistant answer's text changes while it streams.
WATCH_UPDATES = """
window.__answerUpdates = [];
new MutationObserver(() => {
  const answers = document.querySelectorAll('#messages .message.assistant .content');
  answers.forEach((element, index) => {
    const text = element.textContent;
    const seen = window.__answerUpdates[index] || {count: 0, last: ''};
    if (text !== seen.last) { seen.count += 1; seen.last = text; }
    window.__answerUpdates[index] = seen;
  });
}).observe(document.getElementById('messages'), {subtree: true, childList: true, characterData: true});
"""


class StepFailed(Exception):
    pass


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise StepFailed(message)


class Api:
    """Direct requests to the server, to compare the page with."""

    def __init__(self, url: str, api_key: str | None):
        self.url = url.rstrip("/")
        self.api_key = api_key

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=300) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def greedy_answer(self, model: str, messages: list[dict]) -> dict:
        status, body = self.request("POST", "/v1/chat/completions", {
            "model": model, "messages": messages, "temperature": 0, "top_p": TOP_P, "max_tokens": MAX_TOKENS})
        expect(status == 200, f"the server's own answer: HTTP {status} {body}")
        return body


def start_browser() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,860", "--force-device-scale-factor=1"):
        options.add_argument(argument)
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver") or "/usr/lib/chromium/chromedriver"
    if browser is None or not Path(driver).exists():
        raise RuntimeError("chromium and chromium-driver are not installed (scripts/install_dependencies.sh --python)")
    options.binary_location = browser
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))


class Page:
    def __init__(self, driver: webdriver.Chrome, timeout: float):
        self.driver = driver
        self.timeout = timeout

    def find(self, selector: str):
        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def all(self, selector: str):
        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def wait(self, condition, what: str, timeout: float | None = None):
        try:
            return WebDriverWait(self.driver, timeout or self.timeout, poll_frequency=0.1).until(lambda _: condition())
        except TimeoutException:
            errors = [element.text for element in self.all("#messages .message.error .content")]
            raise StepFailed(f"timed out waiting for {what}" + (f"; the page shows the error {errors[-1]!r}" if errors else "")) from None

    def set_field(self, selector: str, value: str) -> None:
        field = self.find(selector)
        field.clear()
        field.send_keys(value)
        field.send_keys(Keys.TAB)  # fires "change"

    def ask(self, text: str) -> None:
        prompt = self.find("#prompt")
        prompt.send_keys(text)
        prompt.send_keys(Keys.ENTER)

    def answers(self):
        return self.all("#messages .message.assistant")

    def wait_answer(self, index: int, states=("done",), timeout: float | None = None) -> object:
        def finished():
            answers = self.answers()
            return len(answers) > index and answers[index].get_attribute("data-state") in states and answers[index]
        return self.wait(finished, f"answer {index + 1} to reach {'/'.join(states)}", timeout)


def run_steps(page: Page, api: Api, screenshot: Path, with_key: bool) -> tuple[int, int]:
    passed = failed = 0
    context: dict = {}

    def step(name: str, function) -> bool:
        nonlocal passed, failed
        started = time.monotonic()
        try:
            note = function()
        except Exception as error:
            failed += 1
            print(f"FAIL {name} ({time.monotonic() - started:.1f} s): {error}", flush=True)
            return False
        passed += 1
        print(f"ok   {name} ({time.monotonic() - started:.1f} s){': ' + note if note else ''}", flush=True)
        return True

    def load():
        page.driver.get(api.url + "/")
        expect(page.driver.title == "Loom chat", f"title {page.driver.title!r}")
        status, models = api.request("GET", "/v1/models")
        expect(status == 200, f"GET /v1/models: HTTP {status}")
        context["model"] = models["data"][0]["id"]
        notes = []
        if with_key:
            page.wait(lambda: "no model" in page.find("#model-name").text, "the page to fail without the key")
            message = page.find("#status").text
            expect(message.strip() != "", "no message shown for the 401")
            notes.append(f"without the key: {message!r}")
            page.set_field("#api-key", api.api_key)
        page.wait(lambda: page.find("#model-name").text == context["model"], f"the model name {context['model']!r}")
        page.set_field("#temperature", "0")
        page.set_field("#max-tokens", str(MAX_TOKENS))
        page.set_field("#top-p", str(TOP_P))
        page.driver.execute_script(WATCH_UPDATES)
        return "; ".join(notes + [f"model {context['model']!r}"])

    def first_turn():
        page.ask(FIRST_QUESTION)
        answer = page.wait_answer(0)
        text = answer.find_element(By.CSS_SELECTOR, ".content").text
        updates = page.driver.execute_script("return window.__answerUpdates[0].count")
        expected = api.greedy_answer(context["model"], [{"role": "user", "content": FIRST_QUESTION}])
        expected_text = expected["choices"][0]["message"]["content"]
        # textContent keeps spaces the rendered .text may trim at the ends.
        content = page.driver.execute_script("return arguments[0].querySelector('.content').textContent", answer)
        expect(content == expected_text, f"the page answered {content!r}, the server answers {expected_text!r}")
        expect(updates >= 3, f"the answer changed {updates} times: it did not stream")
        stats = answer.find_element(By.CSS_SELECTOR, ".stats").text
        expect("tokens/s" in stats, f"no tokens/s after the answer: {stats!r}")
        context["first"] = {"answer": content, "prompt_tokens": int(answer.get_attribute("data-prompt-tokens") or 0),
                            "completion_tokens": int(answer.get_attribute("data-completion-tokens") or 0)}
        return f"{text[:50]!r}, {updates} updates while streaming, {stats!r}"

    def second_turn():
        page.ask(SECOND_QUESTION)
        answer = page.wait_answer(1)
        content = page.driver.execute_script("return arguments[0].querySelector('.content').textContent", answer)
        conversation = [{"role": "user", "content": FIRST_QUESTION},
                        {"role": "assistant", "content": context["first"]["answer"]},
                        {"role": "user", "content": SECOND_QUESTION}]
        expected = api.greedy_answer(context["model"], conversation)
        expected_text = expected["choices"][0]["message"]["content"]
        alone = api.greedy_answer(context["model"], conversation[2:])["choices"][0]["message"]["content"]
        expect(content == expected_text, f"the page answered {content!r}; the server answers the whole conversation "
                                         f"with {expected_text!r} (and the question alone with {alone!r})")
        prompt_tokens = int(answer.get_attribute("data-prompt-tokens") or 0)
        expect(prompt_tokens == expected["usage"]["prompt_tokens"],
               f"the page's second request had {prompt_tokens} prompt tokens, the whole conversation has "
               f"{expected['usage']['prompt_tokens']}")
        first = context["first"]
        expect(prompt_tokens > first["prompt_tokens"] + first["completion_tokens"],
               f"second prompt {prompt_tokens} tokens, first turn {first['prompt_tokens']} + {first['completion_tokens']}")
        users = page.all("#messages .message.user .content")
        expect(users[-1].text == SECOND_QUESTION, f"the question is shown as {users[-1].text!r}")
        markup = page.driver.execute_script("return document.querySelectorAll('#messages b, #messages img').length")
        expect(markup == 0, f"{markup} elements were created from the text")
        return (f"{content[:50]!r}, prompt {prompt_tokens} tokens "
                f"({answer.get_attribute('data-cached-tokens')} cached); markup shown as text")

    def stop_button():
        page.set_field("#max-tokens", "1000")  # with the prompt, within a 2048-token context
        page.set_field("#temperature", "0.8")
        page.ask("Write a long story about a lighthouse keeper and a storm.")
        def third_answer_text() -> str:
            answers = page.all("#messages .message.assistant .content")
            return answers[2].get_attribute("textContent") if len(answers) >= 3 else ""
        page.wait(lambda: len(third_answer_text()) > 20, "the third answer to start")
        shown_before_stop = third_answer_text()
        page.find("#stop").click()
        answer = page.wait_answer(2, states=("stopped",), timeout=30)
        stats = answer.find_element(By.CSS_SELECTOR, ".stats").text
        expect("stopped" in stats, f"stats {stats!r}")
        expect(page.find("#send").is_enabled() and not page.find("#stop").is_enabled(), "buttons after stopping")
        kept = third_answer_text()
        expect(kept.startswith(shown_before_stop), f"the stopped answer {kept!r} lost the text {shown_before_stop!r}")
        return stats

    def error_shown():
        page.set_field("#max-tokens", "0")
        page.ask("hello")
        page.wait(lambda: page.all("#messages .message.error"), "an error message")
        shown = page.all("#messages .message.error .content")[-1].text
        status, body = api.request("POST", "/v1/chat/completions", {
            "model": context["model"], "messages": [{"role": "user", "content": "hello"}], "max_tokens": 0})
        expect(status == 400, f"max_tokens 0: HTTP {status}")
        expect(shown == body["error"]["message"], f"the page shows {shown!r}, the server said {body['error']['message']!r}")
        expect(page.find("#prompt").get_attribute("value") == "hello", "the failed question is not given back")
        page.set_field("#max-tokens", str(MAX_TOKENS))
        page.find("#prompt").clear()
        return repr(shown)

    def take_screenshot():
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        expect(page.driver.save_screenshot(str(screenshot)), "save_screenshot failed")
        return str(screenshot)

    for name, function in (("page loads, key, model name", load), ("first question streams in", first_turn),
                           ("second turn carries the first", second_turn), ("screenshot", take_screenshot),
                           ("stop button", stop_button), ("error message from the server", error_shown)):
        if not step(name, function) and name in ("page loads, key, model name", "first question streams in"):
            failed += 1
            print("FAIL the remaining steps need the first ones", flush=True)
            break
    return passed, failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loom", type=Path, help="the loom binary (starts `loom serve` itself)")
    parser.add_argument("--model", type=Path, help="the model directory for `loom serve`")
    parser.add_argument("--url", help="check a server that is already running instead")
    parser.add_argument("--api-key", default=None, help="the key (with --loom: default a fixed test key)")
    parser.add_argument("--server-arg", action="append", default=[], help="one more argument for `loom serve`")
    parser.add_argument("--screenshot", type=Path, default=REPO_ROOT / ".build" / "web_page_check.png")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for one answer")
    args = parser.parse_args()
    if not args.url and not (args.loom and args.model):
        parser.error("give --loom and --model, or --url")

    server = driver = None
    passed = failed = 0
    try:
        if args.url:
            url, api_key = args.url, args.api_key
        else:
            api_key = args.api_key or "loom-page-key"
            server = LoomServer(args.loom, args.model, api_key=api_key, extra_args=args.server_arg).start()
            url = server.url
        if server is None:
            print(f"checking the running server at {url}", flush=True)
        driver = start_browser()
        passed, failed = run_steps(Page(driver, args.timeout), Api(url, api_key), args.screenshot, bool(api_key))
        if server is not None and not server.alive():
            failed += 1
            print(f"FAIL the server exited with status {server.process.returncode}")
    except Exception as error:
        failed += 1
        print(f"FAIL could not run the page check: {error}", flush=True)
    finally:
        if driver is not None:
            driver.quit()
        if server is not None:
            print(f"server stopped (exit status {server.stop()}); log {server.log_path}")
    print(f"web page: {passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
