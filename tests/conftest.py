import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from llmaudit.config import Settings  # noqa: E402
from llmaudit.ingest.pipeline import Ingestor  # noqa: E402
from llmaudit.ingest.sources import expand_paths  # noqa: E402
from llmaudit.normalize.derive import derive  # noqa: E402
from llmaudit.store import Store  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


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
