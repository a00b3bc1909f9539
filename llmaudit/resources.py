"""Locate the data folders (rules/, report_templates/, sample_traces/) shipped with the package.

In a wheel they live under llmaudit/_data/; in a source checkout (editable install, tests) they are
the top-level folders of the repository.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"llmaudit data folder {name!r} is missing from this installation")
