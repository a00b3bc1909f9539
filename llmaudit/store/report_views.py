"""The report's analytics as views (report_views.yaml): what every renderer formats and `llmaudit query`
can read. Created after each derive, in file order; a view whose required tables or views are not in the
store (no bill, no metrics) is dropped, so a view never describes data the store does not have."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from llmaudit.yamlfile import load_yaml

VIEWS_FILE = Path(__file__).with_name("report_views.yaml")


@lru_cache(maxsize=1)
def report_views() -> list[dict]:
    return load_yaml(VIEWS_FILE.read_text(encoding="utf-8"))


def _exists(con, name: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]).fetchone()[0])


def create_report_views(con) -> list[str]:
    """(Re)create the report views the store has data for; returns their names."""
    made = []
    for view in report_views():
        if all(_exists(con, r) for r in view.get("requires", [])):
            con.execute(f'CREATE OR REPLACE VIEW "{view["name"]}" AS {view["sql"]}')
            made.append(view["name"])
        else:
            con.execute(f'DROP VIEW IF EXISTS "{view["name"]}"')
    return made
