import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import llmaudit  # noqa: E402
from llmaudit.config import Settings  # noqa: E402
from llmaudit.ingest.pipeline import Ingestor  # noqa: E402
from llmaudit.ingest.sources import expand_paths  # noqa: E402
from llmaudit.normalize.derive import derive  # noqa: E402
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
