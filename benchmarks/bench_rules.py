"""All built-in rules over a store of ~1M spans.

    python benchmarks/bench_rules.py [--spans 1000000] [--data DIR]

Builds the store once (cached in --data) from the sample generator's benchmark traffic, then times
each rule and the whole rule run (derived tables already built, as after `llmaudit ingest`).
Target: all built-in rules in at most 10 s on a 2-core machine. The ratio printed is the rule run
against a plain full scan of the spans table measured in the same run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "llmaudit-bench")
    args = ap.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    dump = args.data / f"otlp-{args.spans}.jsonl"
    db = args.data / f"rules-{args.spans}.duckdb"
    if not dump.exists():
        subprocess.run([sys.executable, str(REPO / "sample_traces" / "generate.py"), "bench", "--spans", str(args.spans),
                        "--out", str(dump)], check=True)
    if not db.exists():
        llmaudit = str(Path(sys.executable).with_name("llmaudit"))
        subprocess.run([llmaudit, "ingest", str(dump), "--db", str(db), "--quiet"], check=True)

    from llmaudit.config import Settings
    from llmaudit.normalize.derive import ensure_derived
    from llmaudit.rules.engine import all_rules, observed_window_days, run_rule
    from llmaudit.store import Store

    with Store(db) as store:
        ensure_derived(store, Settings())
        spans, calls = store.execute("SELECT (SELECT count(*) FROM spans), (SELECT count(*) FROM llm_calls)").fetchone()
        t = time.perf_counter()
        store.execute("SELECT count(*), sum(length(attributes)) FROM spans").fetchall()
        scan = time.perf_counter() - t
        window = observed_window_days(store)
        total = 0.0
        print(f"store: {spans:,} spans, {calls:,} LLM calls")
        for rule in all_rules():
            t = time.perf_counter()
            try:
                findings = run_rule(store, rule, rule.bound_params(), window)
                note = f"{len(findings)} finding(s)"
            except Exception as exc:  # noqa: BLE001 - a rule whose tables are absent here
                note = f"not run: {type(exc).__name__}"
            dt = time.perf_counter() - t
            total += dt
            print(f"  {rule.id} {rule.name:<38} {dt:6.2f} s  {note}")
        print(f"all rules           {total:6.2f} s   (target <= 10 s)")
        print(f"full scan of spans  {scan:6.2f} s   rules / scan = {total / scan:.1f}x")


if __name__ == "__main__":
    main()
