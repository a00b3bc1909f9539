"""Metrics scrapes as `curl /metrics` saves them: no sample timestamps (the scrape time comes from
`# scrape` lines, else --scrape-time, else the file's modification time, and the summary says which),
DCGM's blank sentinels stored as NULL, one scrape read as a snapshot (inventory and counters since start;
what needs a time series says it needs more than one scrape), and the text parser checked against
prometheus_client's. The scrapes here are written by this file, modelled on real DCGM exporter and vLLM
0.x output (HELP/TYPE lines, label order, number formats); every expected value is computed here."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmaudit.config import Settings
from llmaudit.ingest.pipeline import Ingestor
from llmaudit.ingest.sources import expand_paths
from llmaudit.metrics_capacity import gpu_hours, inventory
from llmaudit.normalize.derive import derive
from llmaudit.rules.engine import all_rules, run_rules
from llmaudit.store import Store

LLMAUDIT = [sys.executable, "-m", "llmaudit"]
MTIME = datetime(2026, 3, 14, 9, 26, 53)      # the file time a curl scrape is dated with (UTC)
GIVEN = datetime(2025, 11, 22, 8, 0, 0)       # a --scrape-time
INT32_BLANK, INT64_BLANK, FP64_BLANK = 0x7FFFFFF0, 0x7FFFFFFFFFFFFFF0, 2.0 ** 47


def unix(t: datetime) -> float:
    return t.replace(tzinfo=timezone.utc).timestamp()


def dated(path: Path, t: datetime = MTIME) -> Path:
    os.utime(path, (unix(t), unix(t)))
    return path


def samples_in(text: str) -> int:
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


def run_cli(*args):
    return subprocess.run([*LLMAUDIT, *map(str, args)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "160"})


@pytest.fixture
def db(tmp_path):
    s = Store(tmp_path / "s.duckdb")
    yield s
    s.close()


def ingest(store, *paths, options=None, strict=False):
    report = Ingestor(store, workers=1, strict=strict, options=options).run(expand_paths([str(p) for p in paths]))
    return report


def rows(store, sql, params=None):
    return store.execute(sql, params).fetchall()


# --------------------------------------------------------------------------------------------------
# Scrapes as the exporters write them
# --------------------------------------------------------------------------------------------------

# DCGM exporter fields: (name, type, help, value text per GPU index). GPU 1 cannot read DRAM activity
# (an FP64 blank, as DCGM's %f prints it), nor its memory temperature (an INT64 blank: not supported).
DCGM_FIELDS = [
    ("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz).", lambda g: ("210", "1980")[g]),
    ("DCGM_FI_DEV_MEMORY_TEMP", "gauge", "Memory temperature (in C).", lambda g: ("0", str(INT64_BLANK + 2))[g]),
    ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C).", lambda g: ("31", "62")[g]),
    ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).", lambda g: ("16.365000", "301.250000")[g]),
    ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter", "Total energy consumption since boot (in mJ).",
     lambda g: ("4742776", "5551899580")[g]),     # above the int32 blanks: a real int64 reading
    ("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "counter", "Total number of PCIe retries.", lambda g: "0"),
    ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).", lambda g: ("0", "87")[g]),
    ("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB).", lambda g: ("22563", "1024")[g]),
    ("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB).", lambda g: ("0", "21539")[g]),
    ("DCGM_FI_DEV_XID_ERRORS", "gauge", "Value of the last XID error encountered.",
     lambda g: ("0", str(INT32_BLANK + 1))[g]),     # an INT32 blank (not found)
    ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "gauge", "Ratio of time the graphics engine is active.",
     lambda g: ("0.000000", "0.912345")[g]),
    ("DCGM_FI_PROF_DRAM_ACTIVE", "gauge", "Ratio of cycles the device memory interface is active sending or "
     "receiving data.", lambda g: ("0.000131", "140737488355328.000000")[g]),
    ("DCGM_FI_PROF_PCIE_TX_BYTES", "gauge", "The rate of data transmitted over the PCIe bus - including both "
     "protocol headers and data payloads - in bytes per second.", lambda g: ("112603", str(INT32_BLANK - 1))[g]),
]
BLANKS = {("DCGM_FI_DEV_MEMORY_TEMP", "1"), ("DCGM_FI_DEV_XID_ERRORS", "1"), ("DCGM_FI_PROF_DRAM_ACTIVE", "1")}
GPUS = [("NVIDIA L4", "00000000:31:00.0"), ("NVIDIA L4", "00000000:32:00.0")]
HOST = "i-030791dc5a37cd257"


def dcgm_labels(g: int) -> str:
    model, bus = GPUS[g]
    return (f'gpu="{g}",UUID="GPU-c2f76b33-7953-256e-8f33-13434{g}9b1a1c",pci_bus_id="{bus}",device="nvidia{g}",'
            f'modelName="{model}",Hostname="{HOST}",DCGM_FI_DRIVER_VERSION="580.105.08"')


def dcgm_scrape() -> str:
    out = []
    for name, kind, text, value in DCGM_FIELDS:
        out += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
        out += [f"{name}{{{dcgm_labels(g)}}} {value(g)}" for g in range(len(GPUS))]
    return "\n".join(out) + "\n"


MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
VL = f'engine="0",model_name="{MODEL}"'
BUCKETS = ["0.001", "0.005", "0.01", "0.02", "0.04", "0.06", "0.08", "0.1", "0.25", "0.5", "0.75", "1.0", "+Inf"]


def vllm_scrape() -> str:
    """vLLM /metrics: Python process metrics, gauges, counters (_total and _created), a histogram, an
    info-like gauge whose label value needs escaping, NaN."""
    out = [
        "# HELP python_gc_objects_collected_total Objects collected during gc",
        "# TYPE python_gc_objects_collected_total counter",
        'python_gc_objects_collected_total{generation="0"} 14250.0',
        'python_gc_objects_collected_total{generation="1"} 2120.0',
        "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.",
        "# TYPE process_start_time_seconds gauge",
        "process_start_time_seconds 1.7740113846e+09",
        "# HELP vllm:num_requests_running Number of requests in model execution batches.",
        "# TYPE vllm:num_requests_running gauge",
        f"vllm:num_requests_running{{{VL}}} 3.0",
        "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.",
        "# TYPE vllm:num_requests_waiting gauge",
        f"vllm:num_requests_waiting{{{VL}}} 0.0",
        "# HELP vllm:kv_cache_usage_perc KV-Cache usage. 1 means 100 percent usage.",
        "# TYPE vllm:kv_cache_usage_perc gauge",
        f"vllm:kv_cache_usage_perc{{{VL}}} NaN",
        "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.",
        "# TYPE vllm:prompt_tokens_total counter",
        f"vllm:prompt_tokens_total{{{VL}}} 120400.0",
        "# HELP vllm:prompt_tokens_created Number of prefill tokens processed.",
        "# TYPE vllm:prompt_tokens_created gauge",
        f"vllm:prompt_tokens_created{{{VL}}} 1.7740114612872875e+09",
        "# HELP vllm:generation_tokens_total Number of generation tokens processed.",
        "# TYPE vllm:generation_tokens_total counter",
        f"vllm:generation_tokens_total{{{VL}}} 30100.0",
        "# HELP vllm:request_success_total Count of successfully processed requests.",
        "# TYPE vllm:request_success_total counter",
        f'vllm:request_success_total{{engine="0",finished_reason="stop",model_name="{MODEL}"}} 300.0',
        f'vllm:request_success_total{{engine="0",finished_reason="length",model_name="{MODEL}"}} 100.0',
        f'vllm:request_success_total{{engine="0",finished_reason="abort",model_name="{MODEL}"}} 0.0',
        "# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.",
        "# TYPE vllm:time_to_first_token_seconds histogram",
    ]
    cumulative = 0
    for i, le in enumerate(BUCKETS):
        cumulative += (0, 5, 40, 90, 120, 80, 30, 20, 10, 3, 1, 1, 0)[i]
        out.append(f'vllm:time_to_first_token_seconds_bucket{{{VL},le="{le}"}} {float(cumulative)!r}')
    out += [
        f"vllm:time_to_first_token_seconds_count{{{VL}}} {float(cumulative)!r}",
        f"vllm:time_to_first_token_seconds_sum{{{VL}}} 11.093712091445923",
        "# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig",
        "# TYPE vllm:cache_config_info gauge",
        'vllm:cache_config_info{block_size="16",cache_dtype="auto",prefix="a \\"quoted\\" \\\\ path\\nline"} 1.0',
    ]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------------
# Where a sample's time comes from
# --------------------------------------------------------------------------------------------------

def test_a_curl_scrape_is_read_at_the_files_modification_time(db, tmp_path):
    dcgm = tmp_path / "dcgm.prom"
    dcgm.write_text(dcgm_scrape())
    dated(dcgm)
    vllm = tmp_path / "vllm.prom"
    vllm.write_text(vllm_scrape())
    dated(vllm, datetime(2026, 3, 14, 9, 27, 5, 750000))  # a fraction of a second: dated to the second
    report = ingest(db, dcgm, vllm)
    n_dcgm = len(DCGM_FIELDS) * len(GPUS)
    n_vllm = samples_in(vllm_scrape())
    assert [(f.format, f.records, f.stored, f.rejects) for f in report.files] == [
        ("prom-text", n_dcgm, n_dcgm, 0), ("prom-text", n_vllm, n_vllm, 0)]
    assert rows(db, "SELECT file_id, min(time), max(time), count(*) FROM metric_samples GROUP BY 1 ORDER BY 1") == [
        (1, MTIME, MTIME, n_dcgm), (2, datetime(2026, 3, 14, 9, 27, 5), datetime(2026, 3, 14, 9, 27, 5), n_vllm)]
    assert rows(db, "SELECT file_id, time_source, scrape_time, blank_values FROM metric_files ORDER BY 1") == [
        (1, "file modification time", MTIME, len(BLANKS)), (2, "file modification time", datetime(2026, 3, 14, 9, 27, 5), 0)]


def test_scrape_time_option_dates_a_curl_scrape_and_separators_still_win(db, tmp_path):
    curl = tmp_path / "a-curl.prom"
    curl.write_text(vllm_scrape())
    dated(curl)
    separated = tmp_path / "b-separated.prom"
    separated.write_text(
        f"vllm:num_requests_running{{{VL}}} 9.0\n"              # before any separator: no time
        "# scrape 2025-11-22T07:00:00Z\n"
        f"vllm:num_requests_running{{{VL}}} 1.0\n"
        "# scrape 2025-11-22T07:00:15Z\n"
        f"vllm:num_requests_running{{{VL}}} 2.0\n")
    dated(separated)
    report = ingest(db, curl, separated, options={"scrape_time_us": int(unix(GIVEN)) * 1_000_000})
    assert [(f.stored, f.rejects) for f in report.files] == [(samples_in(vllm_scrape()), 0), (2, 1)]
    assert rows(db, "SELECT DISTINCT time FROM metric_samples WHERE file_id = 1") == [(GIVEN,)]
    assert rows(db, "SELECT time, value FROM metric_samples WHERE file_id = 2 ORDER BY time") == [
        (datetime(2025, 11, 22, 7), 1.0), (datetime(2025, 11, 22, 7, 0, 15), 2.0)]
    assert rows(db, "SELECT file_id, time_source, scrape_time FROM metric_files ORDER BY 1") == [
        (1, "--scrape-time", GIVEN), (2, "# scrape lines", None)]
    [(line, record, reason)] = rows(db, "SELECT line, record, reason FROM rejects")
    assert (line, record) == (1, "line 1") and "no '# scrape <ISO 8601 time>'" in reason


def test_only_the_first_scrape_of_a_file_takes_the_file_time(db, tmp_path):
    """Two scrapes concatenated without separators (or a second one after OpenMetrics' # EOF): the file's
    time dates the first; the second's time is unknown, and each run of its lines is one reject."""
    scrape = vllm_scrape()
    n = samples_in(scrape)
    twice = tmp_path / "a-twice.prom"
    twice.write_text(scrape + scrape)
    dated(twice)
    om = tmp_path / "b-openmetrics.txt"
    om.write_text('up{job="x"} 1\n# EOF\nup{job="x"} 0\n# EOF\n')
    dated(om)
    report = ingest(db, twice, om)
    assert [(f.records, f.stored, f.rejects) for f in report.files] == [(2 * n, n, 1), (2, 1, 1)]
    got = rows(db, "SELECT path, line, record, reason FROM rejects ORDER BY path")
    lines = scrape.splitlines()
    first = len(lines) + 1 + next(i for i, line in enumerate(lines) if not line.startswith("#"))
    assert got[0][0].endswith("a-twice.prom") and got[0][1:3] == (first, f"lines {first}-{2 * len(lines)}")
    assert got[0][3].startswith(f"{n} sample(s) on lines {first}-{2 * len(lines)} have no timestamp")
    assert got[1][0].endswith("b-openmetrics.txt") and got[1][1:3] == (3, "line 3")
    for _, _, _, reason in got:
        assert "belong to a second scrape" in reason and "file modification time" in reason
    assert rows(db, "SELECT value FROM metric_samples WHERE file_id = 2") == [(1.0,)]


def test_samples_with_and_without_timestamps_in_one_file(db, tmp_path):
    stamped = 1_763_798_400_000
    path = tmp_path / "mixed.prom"
    path.write_text(f"up{{job=\"a\"}} 1 {stamped}\nup{{job=\"b\"}} 0\n")
    dated(path)
    ingest(db, path)
    assert rows(db, "SELECT json_extract_string(labels, '$.job'), time FROM metric_samples ORDER BY 1") == [
        ("a", datetime(2025, 11, 22, 8)), ("b", MTIME)]
    assert rows(db, "SELECT time_source FROM metric_files") == [("sample timestamps + file modification time",)]


def test_prom_api_json_from_the_docs_is_six_samples(db, tmp_path):
    """The query_range?query=up answer of Prometheus' API docs: two series of three points."""
    doc = {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"__name__": "up", "job": "prometheus", "instance": "localhost:9090"},
         "values": [[1435781430.781, "1"], [1435781445.781, "1"], [1435781460.781, "1"]]},
        {"metric": {"__name__": "up", "job": "node", "instance": "localhost:9091"},
         "values": [[1435781430.781, "0"], [1435781445.781, "0"], [1435781460.781, "1"]]}]}}
    path = tmp_path / "up.json"
    path.write_text(json.dumps(doc, indent=3))
    (f,) = ingest(db, path).files
    assert (f.format, f.stored, f.rejects) == ("prom-api-json", 6, 0)
    assert rows(db, "SELECT host, sum(value), min(time) FROM metric_samples GROUP BY 1 ORDER BY 1") == [
        ("localhost", 4.0, datetime(2015, 7, 1, 20, 10, 30, 781000))]
    assert rows(db, "SELECT time_source, scrape_time FROM metric_files") == [("sample timestamps", None)]


# --------------------------------------------------------------------------------------------------
# DCGM blanks
# --------------------------------------------------------------------------------------------------

def test_dcgm_blank_sentinels_are_nulls_and_real_values_next_to_them_are_kept(db, tmp_path):
    path = tmp_path / "dcgm.prom"
    path.write_text(dcgm_scrape())
    ingest(db, path)
    got = {(m, d): v for m, d, v in rows(db, "SELECT metric, device, value FROM metric_samples")}
    expected = {(name, str(g)): (None if (name, str(g)) in BLANKS else float(value(g)))
                for name, _, _, value in DCGM_FIELDS for g in range(len(GPUS))}
    assert got == expected
    assert got[("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "1")] == 5551899580.0  # int64, above the int32 blanks
    assert got[("DCGM_FI_PROF_PCIE_TX_BYTES", "1")] == float(INT32_BLANK - 1)  # one below the blanks
    # A non-DCGM value in the same ranges is a value: the sentinels are DCGM's.
    other = tmp_path / "other.prom"
    other.write_text(f"# scrape 2025-11-22T08:00:00Z\nprocess_virtual_memory_bytes {INT32_BLANK + 3}\n"
                     f"vllm:prompt_tokens_total{{{VL}}} {FP64_BLANK:.1f}\n")
    ingest(db, other)
    assert rows(db, "SELECT metric, value FROM metric_samples WHERE file_id = 2 ORDER BY 1") == [
        ("process_virtual_memory_bytes", float(INT32_BLANK + 3)), ("vllm:prompt_tokens_total", FP64_BLANK)]
    # Through Prometheus and its API, a blank comes back as text without decimals: still a blank.
    api = tmp_path / "api.json"
    api.write_text(json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"__name__": "DCGM_FI_PROF_SM_ACTIVE", "gpu": "0", "Hostname": HOST}, "value": [1763798400, "140737488355328"]},
        {"metric": {"__name__": "DCGM_FI_DEV_GPU_TEMP", "gpu": "0", "Hostname": HOST}, "value": [1763798400, "9223372036854775808"]},
        {"metric": {"__name__": "DCGM_FI_DEV_GPU_UTIL", "gpu": "0", "Hostname": HOST}, "value": [1763798400, "42"]}]}}))
    ingest(db, api)
    assert rows(db, "SELECT metric, value FROM metric_samples WHERE file_id = 3 ORDER BY 1") == [
        ("DCGM_FI_DEV_GPU_TEMP", None), ("DCGM_FI_DEV_GPU_UTIL", 42.0), ("DCGM_FI_PROF_SM_ACTIVE", None)]
    assert rows(db, "SELECT file_id, blank_values FROM metric_files ORDER BY 1") == [(1, 3), (2, 0), (3, 2)]


# --------------------------------------------------------------------------------------------------
# Checked against prometheus_client's parser
# --------------------------------------------------------------------------------------------------

def reference_parse(text: str) -> dict:
    """{(sample name, labels): value} as prometheus_client reads the exposition. Its text parser names a
    counter's samples the OpenMetrics way (`X` written, `X_total` returned): that renaming is undone."""
    out = {}
    written = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            name = s.name
            if family.type == "counter" and name not in written and name.removesuffix("_total") in written:
                name = name.removesuffix("_total")
            key = (name, tuple(sorted(s.labels.items())))
            assert key not in out
            out[key] = s.value
    return out


@pytest.mark.parametrize("scrape", [dcgm_scrape, vllm_scrape])
def test_prom_text_reads_what_prometheus_client_reads(db, tmp_path, scrape):
    text = scrape()
    path = tmp_path / "scrape.prom"
    path.write_text(text)
    ingest(db, path)
    ours = {(m, tuple(sorted(json.loads(labels).items()))): v
            for m, labels, v in rows(db, "SELECT metric, labels::VARCHAR, value FROM metric_samples")}
    theirs = reference_parse(text)
    assert len(ours) == len(theirs) == sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    assert set(ours) == set(theirs)
    for key, value in theirs.items():
        if math.isnan(value) or (key[0].startswith("DCGM_") and value >= INT32_BLANK and
                                 (value <= 0x7FFFFFFF or value >= FP64_BLANK)):
            assert ours[key] is None, key  # NaN and DCGM blanks are stored as NULL
        else:
            assert ours[key] == value, key
    escaped = next(dict(k[1]) for k in ours if k[0] == "vllm:cache_config_info") if scrape is vllm_scrape else None
    if escaped is not None:
        assert escaped["prefix"] == 'a "quoted" \\ path\nline'


# --------------------------------------------------------------------------------------------------
# One scrape is a snapshot
# --------------------------------------------------------------------------------------------------

@pytest.fixture
def snapshot(tmp_path):
    dcgm, vllm = tmp_path / "dcgm.prom", tmp_path / "vllm.prom"
    dcgm.write_text(dcgm_scrape())
    vllm.write_text(vllm_scrape())
    return [dated(dcgm), dated(vllm)]


def test_one_scrape_gives_the_inventory_and_counters_since_start_but_no_hours(db, snapshot):
    ingest(db, *snapshot)
    derive(db, Settings())
    inv = inventory(db)
    assert [(g.host, g.device, g.gpu_model, g.uuid, g.scrapes) for g in inv.gpus] == [
        (HOST, str(g), GPUS[g][0], f"GPU-c2f76b33-7953-256e-8f33-13434{g}9b1a1c", 1) for g in range(len(GPUS))]
    (server,) = inv.servers
    assert (server.host, server.model_name, server.scrapes, server.first_seen) == (None, MODEL, 1, MTIME)
    assert {k: server.since_start[k] for k in ("prompt_tokens", "generation_tokens", "requests_succeeded",
                                               "ttft_seconds_count")} == {
        "prompt_tokens": 120400.0, "generation_tokens": 30100.0, "requests_succeeded": 400.0, "ttft_seconds_count": 400.0}
    assert inv.snapshot and inv.snapshot_times == (MTIME, MTIME)
    # One sample covers no time: no GPU-hours, rather than a guessed interval.
    assert gpu_hours(db) == []
    assert rows(db, "SELECT DISTINCT seconds, coverage_ends FROM gpu_busy_intervals") == [(0.0, True)]
    result = run_rules(db, [r for r in all_rules() if r.id in ("LLMA013", "LLMA014")])
    assert result.findings == [] and result.errors == {}
    assert result.skipped == {
        "LLMA013": "needs more than one scrape: each of the 2 GPU(s) was scraped once (a snapshot at "
                   "2026-03-14 09:26:53 UTC), and idle GPU-hours are measured between scrapes",
        "LLMA014": "needs more than one scrape: each of the 1 model server(s) was scraped once (a snapshot at "
                   "2026-03-14 09:26:53 UTC), and replicas over time are measured between scrapes"}


def test_two_scrapes_make_a_time_series(db, tmp_path):
    """The same node scraped twice, 15 s apart (separators): no longer a snapshot, and LLMA013 runs."""
    path = tmp_path / "two.prom"
    path.write_text("# scrape 2026-03-14T09:26:38Z\n" + dcgm_scrape() + "# scrape 2026-03-14T09:26:53Z\n" + dcgm_scrape())
    ingest(db, path)
    derive(db, Settings())
    inv = inventory(db)
    assert not inv.snapshot and {g.scrapes for g in inv.gpus} == {2}
    assert sum(h.provisioned_gpu_hours for h in gpu_hours(db)) == pytest.approx(2 * 2 * 15 / 3600)
    result = run_rules(db, [r for r in all_rules() if r.id == "LLMA013"])
    assert "LLMA013" not in result.skipped and result.errors == {}


def test_the_summary_says_the_time_source_per_file_and_that_one_scrape_is_a_snapshot(tmp_path, snapshot):
    db = tmp_path / "cli.duckdb"
    res = run_cli("ingest", *snapshot, "--db", db)
    assert res.returncode == 0, res.stderr
    out = " ".join(res.stdout.split())
    dcgm_n, vllm_n = len(DCGM_FIELDS) * len(GPUS), samples_in(vllm_scrape())
    assert (f"Times {snapshot[0]}: {dcgm_n} samples in 1 scrape, time from file modification time "
            f"(2026-03-14 09:26:53 UTC); 3 DCGM blank values stored as NULL") in out
    assert f"{snapshot[1]}: {vllm_n} samples in 1 scrape, time from file modification time" in out
    assert f"GPUs {HOST}: 2 x NVIDIA L4" in out
    assert (f"Served {MODEL} on a server with no host label, 1 scrape; since start: 120,400 prompt tokens, "
            "30,100 generated tokens, 400 requests") in out
    assert ("Time series none: each GPU and model server was scraped once (a snapshot, at 2026-03-14 09:26:53 UTC)"
            in out) and "need more than one scrape" in out

    res = run_cli("analyze", *snapshot, "-v", "--scrape-time", str(int(unix(GIVEN))))
    assert res.returncode == 0, res.stderr
    out = " ".join(res.stdout.split())
    assert "time from --scrape-time (2025-11-22 08:00:00 UTC)" in out
    assert ("skipped LLMA013: needs more than one scrape: each of the 2 GPU(s) was scraped once (a snapshot at "
            "2025-11-22 08:00:00 UTC)") in out
    assert "skipped LLMA014: needs more than one scrape" in out
    assert "2 GPUs (NVIDIA L4) seen in one scrape each (a snapshot): GPU-hours need more than one scrape" in out
    assert "1 model server(s) seen in one scrape (a snapshot): 3 request(s) running then" in out

    res = run_cli("ingest", *snapshot, "--scrape-time", "last tuesday")
    assert res.returncode == 2 and "--scrape-time: scrape time 'last tuesday' is neither ISO 8601 nor unix seconds" in res.stderr


def test_a_rule_test_can_expect_the_rule_to_be_skipped(tmp_path):
    """`expect.skipped` passes only when the rule was skipped for that reason, and only a negative test of a
    rule with skip_when may expect it."""
    from llmaudit.rules.selftest import run_all
    from llmaudit.rules.spec import RuleError, load_rule_file

    (tmp_path / "fx").mkdir()
    (tmp_path / "fx" / "one.prom").write_text(dcgm_scrape())
    (tmp_path / "fx" / "two.prom").write_text("# scrape 2026-03-14T09:26:38Z\n" + dcgm_scrape()
                                              + "# scrape 2026-03-14T09:26:53Z\n" + dcgm_scrape())
    rule = """id: TEST013
name: gpus-over-time
title: GPUs seen over time
category: idle_capacity
severity: low
summary: A rule that needs more than one scrape of the GPU metrics to say anything about them.
saving: none, it only counts the GPUs seen over time.
remediation: nothing to do; this rule is a test of skip_when.
requires: [metric_samples]
skip_when: SELECT CASE WHEN max(scrapes) < 2 THEN 'needs more than one scrape' END FROM gpu_inventory
message: "{gpus} GPUs"
sql: SELECT count(DISTINCT device) AS gpus FROM gpu_busy_intervals WHERE seconds > 0
tests:
  - name: two scrapes
    kind: positive
    fixture: fx/two.prom
    expect: {findings: 1}
  - name: one scrape
    kind: negative
    fixture: fx/one.prom
    expect: {findings: 0, skipped: more than one scrape}
"""
    path = tmp_path / "TEST013.yaml"
    path.write_text(rule)
    outcomes = run_all([load_rule_file(path)])
    assert [(o.test, o.passed) for o in outcomes] == [("two scrapes", True), ("one scrape", True)]
    assert outcomes[1].detail == "skipped: needs more than one scrape"
    # Expecting a skip from data the rule runs on fails the test.
    path.write_text(rule.replace("fixture: fx/one.prom", "fixture: fx/two.prom"))
    outcomes = run_all([load_rule_file(path)])
    assert not outcomes[1].passed and "expected the rule to be skipped" in outcomes[1].detail
    # A positive test cannot expect a skip.
    path.write_text(rule.replace("expect: {findings: 1}", "expect: {findings: 1, skipped: scrape}"))
    with pytest.raises(RuleError, match="only a negative test of a rule with skip_when"):
        load_rule_file(path)
