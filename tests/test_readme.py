"""The README's quickstart is what CI runs: the two commands must appear verbatim in .ci/run."""

import re

from conftest import REPO


def quickstart_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return [m.strip() for m in re.findall(r"^    (\S.*)$", section, flags=re.M)]


def test_readme_has_exactly_two_quickstart_commands():
    cmds = quickstart_commands()
    assert cmds == ["pip install . && llmaudit analyze sample_traces/", "pip install -e '.[dev]' && bash scripts/install_test_deps.sh && pytest -q"]


def test_ci_runs_the_readme_commands_in_order():
    ci = (REPO / ".ci" / "run").read_text()
    first, second = quickstart_commands()
    assert first in ci and second in ci
    assert ci.index(first) < ci.index(second)
    assert "set -euo pipefail" in ci
