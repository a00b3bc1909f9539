"""Start a model server for a replay, wait until it answers /health, and stop it afterwards.

    with launched("python -m vllm.entrypoints.openai.api_server --model M --port 8011",
                  "http://127.0.0.1:8011") as server:
        ...

The command runs in its own process group (vLLM starts an engine-core child process, and a shell
command may start more), and stopping sends SIGTERM to the whole group, then SIGKILL to whatever is
left after a grace period, so no engine survives the replay. Its output goes to a log file whose
tail is shown when the server dies before it is healthy.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


class ServerError(RuntimeError):
    pass


def health_ok(base_url: str, timeout_s: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url.rstrip('/')}/health", timeout=timeout_s) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


class LaunchedServer:
    def __init__(self, command: str | list[str], base_url: str, *, env: dict[str, str] | None = None,
                 log_path: str | Path | None = None, cwd: str | Path | None = None):
        self.command = command
        self.base_url = base_url
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self._own_log = log_path is None
        self.log_path = Path(log_path) if log_path else Path(tempfile.mkstemp(prefix="llmaudit-server-", suffix=".log")[1])
        self.proc: subprocess.Popen | None = None
        self.started_s: float | None = None

    def start(self) -> None:
        argv = self.command if isinstance(self.command, list) else ["/bin/sh", "-c", "exec " + self.command]
        self._log = open(self.log_path, "ab")
        # start_new_session: its own process group, so stop() reaches the engine's children too,
        # and a Ctrl-C meant for llmaudit is not delivered to the server before we stop it cleanly.
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, env=self.env,
                                     cwd=self.cwd, start_new_session=True)

    def wait_healthy(self, timeout_s: float = 300.0, poll_s: float = 0.5) -> float:
        """Seconds until /health answered 200. Raises ServerError if it exits or times out."""
        t0 = time.monotonic()
        deadline = t0 + timeout_s
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise ServerError(f"server exited with code {self.proc.returncode} before it was healthy:\n{self.log_tail()}")
            if health_ok(self.base_url):
                self.started_s = time.monotonic() - t0
                return self.started_s
            time.sleep(poll_s)
        raise ServerError(f"server not healthy at {self.base_url}/health after {timeout_s:g} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace_s: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                pass
        # The leader may be gone while children (the engine core) linger: kill the group regardless.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()
        code = self.proc.returncode
        self.proc = None
        return code


@contextmanager
def launched(command: str | list[str], base_url: str, *, timeout_s: float = 300.0, env: dict[str, str] | None = None,
             log_path: str | Path | None = None) -> Iterator[LaunchedServer]:
    if health_ok(base_url):
        raise ServerError(f"something already answers {base_url}/health; use --endpoint for a running server or pick another port")
    server = LaunchedServer(command, base_url, env=env, log_path=log_path)
    server.start()
    try:
        server.wait_healthy(timeout_s)
        yield server
    finally:
        server.stop()


def endpoint_from_command(command: str, default_host: str = "127.0.0.1", default_port: int = 8000) -> str:
    """The URL a server command will listen on, from its --host/--port (vLLM's defaults otherwise)."""
    argv = shlex.split(command)
    host, port = default_host, default_port
    for i, a in enumerate(argv):
        if a in ("--host",) and i + 1 < len(argv):
            host = argv[i + 1]
        elif a.startswith("--host="):
            host = a.split("=", 1)[1]
        elif a in ("--port",) and i + 1 < len(argv):
            port = int(argv[i + 1])
        elif a.startswith("--port="):
            port = int(a.split("=", 1)[1])
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://{host}:{port}"
