"""Ingest speed and memory on a ~500 MB OTLP JSON-lines dump (~575k spans).

    python benchmarks/bench_ingest.py [--spans 575000] [--data DIR]

Generates the dump with sample_traces/generate.py (cached in --data), then measures, in the same
run and on the same file:
  1. `llmaudit ingest FILE --db ... --quiet` (raw ingest + normalization)
  2. the baseline: DuckDB's own read_json + unnest flattening the same file into a table of spans
Prints wall seconds, peak RSS of the whole process tree, and the ratios. Targets: ingest <= 8 s and
< 1 GiB peak RSS on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import measure  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

BASELINE = r"""
import duckdb, sys
con = duckdb.connect(sys.argv[2])
con.execute('''
CREATE TABLE spans AS
WITH r AS (SELECT unnest(resourceSpans) AS rs FROM read_json(?, format='newline_delimited', maximum_object_size=1073741824)),
s AS (SELECT rs.resource AS resource, unnest(rs.scopeSpans) AS ss FROM r),
p AS (SELECT resource, ss.scope AS scope, unnest(ss.spans) AS sp FROM s)
SELECT sp.traceId AS trace_id, sp.spanId AS span_id, sp.parentSpanId AS parent_span_id, sp.name AS name,
       sp.kind AS kind, sp.startTimeUnixNano AS start_ns, sp.endTimeUnixNano AS end_ns,
       sp.status AS status, sp.attributes AS attributes, resource.attributes AS resource_attributes,
       scope.name AS scope_name
FROM p
''', [sys.argv[1]])
print(con.execute('SELECT count(*) FROM spans').fetchone()[0])
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spans", type=int, default=575_000)
    ap.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "llmaudit-bench")
    ap.add_argument("--skip-baseline", action="store_true")
    args = ap.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    dump = args.data / f"otlp-{args.spans}.jsonl"
    if not dump.exists():
        print(f"generating {dump} ...", flush=True)
        subprocess.run([sys.executable, str(REPO / "sample_traces" / "generate.py"), "bench", "--spans", str(args.spans),
                        "--out", str(dump)], check=True)
    size_mb = dump.stat().st_size / 1e6
    llmaudit = str(Path(sys.executable).with_name("llmaudit"))
    with tempfile.TemporaryDirectory() as tmp:
        ours = measure([llmaudit, "ingest", str(dump), "--db", os.path.join(tmp, "ours.duckdb"), "--quiet"])
        count = subprocess.run(
            [llmaudit, "query", "--db", os.path.join(tmp, "ours.duckdb"), "SELECT count(*) FROM spans", "-f", "csv"],
            check=True, capture_output=True, text=True).stdout.split()[-1]
        print(f"file                {size_mb:,.0f} MB, {int(count):,} spans stored by llmaudit")
        print(f"llmaudit ingest     {ours['wall_s']:6.2f} s   peak RSS {ours['peak_rss_mib']:6.0f} MiB   "
              f"{size_mb / ours['wall_s']:,.0f} MB/s   {int(count) / ours['wall_s']:,.0f} spans/s")
        if args.skip_baseline:
            return
        base = measure([sys.executable, "-c", BASELINE, str(dump), os.path.join(tmp, "base.duckdb")])
        print(f"duckdb read_json    {base['wall_s']:6.2f} s   peak RSS {base['peak_rss_mib']:6.0f} MiB   "
              f"({base['output'].strip().splitlines()[-1]} spans)")
        print(f"ratio               {base['wall_s'] / ours['wall_s']:.2f}x faster, "
              f"{base['peak_rss_mib'] / max(ours['peak_rss_mib'], 1):.2f}x less memory than the baseline")


if __name__ == "__main__":
    main()
