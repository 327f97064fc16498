"""Starts and stops a `loom serve` process for the serve checks and the load benchmark.

    with LoomServer(loom, model_dir, api_key="k", extra_args=["--parallel", "8"]) as server:
        server.url        # http://127.0.0.1:PORT
        server.pid        # for /proc/PID/status

The server gets a free loopback port, its output goes to a log file (its tail is printed when it
fails to start), and it is always stopped on leaving the block, on SIGTERM/SIGINT included.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on at the moment of asking."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_health(url: str, timeout: float, process: subprocess.Popen | None = None) -> None:
    """Waits until GET {url}/health answers 200; raises RuntimeError on timeout or when the process exits."""
    deadline = time.monotonic() + timeout
    last_error = "no answer"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode} before /health answered")
        try:
            with urllib.request.urlopen(url + "/health", timeout=5) as response:
                if response.status == 200:
                    return
                last_error = f"HTTP {response.status}"
        except urllib.error.HTTPError as error:
            last_error = f"HTTP {error.code}"
        except OSError as error:
            last_error = str(error)
        time.sleep(0.25)
    raise RuntimeError(f"/health did not answer 200 within {timeout:.0f} s ({last_error})")


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class LoomServer:
    """A `loom serve --model DIR --port FREE` child process."""

    def __init__(self, loom: Path, model_dir: Path, api_key: str | None = None,
                 extra_args: list[str] | None = None, startup_timeout: float = 300, log_path: Path | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [str(loom), "serve", "--model", str(model_dir), "--host", "127.0.0.1", "--port", str(self.port)]
        if api_key:
            self.command += ["--api-key", api_key]
        self.command += list(extra_args or [])
        self.startup_timeout = startup_timeout
        self.log_path = log_path or Path(tempfile.mkstemp(prefix="loom-serve-", suffix=".log")[1])
        self.process: subprocess.Popen | None = None
        self._previous_handlers: dict[int, object] = {}

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> "LoomServer":
        print("$ " + " ".join(self.command), flush=True)
        log = open(self.log_path, "wb")
        # LOOM_API_KEY from the caller's environment would change what the checks expect.
        environment = {key: value for key, value in os.environ.items() if key != "LOOM_API_KEY"}
        self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, env=environment)
        log.close()
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous_handlers[signum] = signal.signal(signum, self._on_signal)
        try:
            wait_for_health(self.url, self.startup_timeout, self.process)
        except RuntimeError as error:
            self.stop()
            raise RuntimeError(f"{error}; server log {self.log_path}:\n{tail(self.log_path)}") from None
        return self

    def _on_signal(self, signum, frame):
        self.stop()
        sys.exit(128 + signum)

    def stop(self) -> int | None:
        """Stops the server (SIGTERM, then SIGKILL after 15 s); returns its exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers.clear()
        return self.process.returncode

    def __enter__(self) -> "LoomServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
