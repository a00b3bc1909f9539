"""Metric formats (prom-text, prom-api-json, nvidia-smi-csv) into metric_samples and the views over it,
and the capacity functions built on them. Every expected number is computed here from the values the
test wrote, not read back from the code under test."""

from __future__ import annotations

import gzip
import json
import math
import statistics
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from llmaudit.ingest import metrics
from llmaudit.ingest.core import ReadContext
from llmaudit.ingest.metrics import prom_text
from llmaudit.ingest.pipeline import Ingestor
from llmaudit.ingest.registry import detect
from llmaudit.ingest.sources import Source, expand_paths
from llmaudit.metrics_capacity import gpu_hours, serving_peak_concurrency
from llmaudit.store import Store

REPO = Path(__file__).resolve().parent.parent
T0 = datetime(2025, 11, 22, 8, 0, 0)


@pytest.fixture
def db(tmp_path):
    s = Store(tmp_path / "s.duckdb")
    yield s
    s.close()


def run(store, *paths, strict=False, fmt=None):
    return Ingestor(store, workers=1, strict=strict, force_format=fmt).run(expand_paths([str(p) for p in paths]))


def rows(store, sql, params=None):
    return store.execute(sql, params).fetchall()


def rejects(store):
    return rows(store, "SELECT line, record, reason FROM rejects ORDER BY line NULLS FIRST, record")


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def ms(t: datetime) -> int:
    return int(t.replace(tzinfo=timezone.utc).timestamp() * 1000)


class Lines:
    """A text file being written, that knows the number of the line it writes next."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, line: str) -> int:
        self.lines.append(line)
        return len(self.lines)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


# --------------------------------------------------------------------------------------------------
# DCGM exporter scrapes, timestamp-less, separated by '# scrape <time>' lines
# --------------------------------------------------------------------------------------------------

DCGM_FIELDS = [
    ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %)."),
    ("DCGM_FI_PROF_SM_ACTIVE", "gauge", "The ratio of cycles an SM has at least 1 warp assigned (in %)."),
    ("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB)."),
    ("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB)."),
    ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W)."),
]
GPUS = [("gpu-node-1", "0", "GPU-5f3c1a22-0d1e-4c55-9a1b-000000000000"),
        ("gpu-node-1", "1", "GPU-5f3c1a22-0d1e-4c55-9a1b-000000000001"),
        ("gpu-node-2", "0", "GPU-77ab0000-1111-2222-3333-000000000000")]
TOTAL_MIB = 81559


def dcgm_value(field: str, scrape: int, g: int) -> float:
    util = (scrape * 7 + g * 13) % 101
    return {
        "DCGM_FI_DEV_GPU_UTIL": float(util),
        "DCGM_FI_PROF_SM_ACTIVE": round(util / 100 * 0.6, 4),
        "DCGM_FI_DEV_FB_USED": float(20000 + 100 * ((scrape + g) % 50)),
        "DCGM_FI_DEV_FB_FREE": float(TOTAL_MIB - (20000 + 100 * ((scrape + g) % 50))),
        "DCGM_FI_DEV_POWER_USAGE": round(90 + 3.5 * util, 2),
    }[field]


def dcgm_labels(g: int) -> str:
    host, idx, uuid = GPUS[g]
    return (f'gpu="{idx}",UUID="{uuid}",pci_bus_id="00000000:{18 + g:02X}:00.0",device="nvidia{idx}",'
            f'modelName="NVIDIA H100 80GB HBM3",Hostname="{host}",DCGM_FI_DRIVER_VERSION="550.54.15"')


def write_dcgm(path: Path, scrapes: int, bad: dict[int, str] | None = None) -> dict:
    """DCGM exporter output, one scrape every 15 s; bad: {scrape: kind} puts a broken line in it."""
    out = Lines()
    bad_lines = {}
    for s in range(scrapes):
        out.add(f"# scrape {iso(T0 + timedelta(seconds=15 * s))}")
        for field, kind, help_text in DCGM_FIELDS:
            out.add(f"# HELP {field} {help_text}")
            out.add(f"# TYPE {field} {kind}")
            for g in range(len(GPUS)):
                out.add(f"{field}{{{dcgm_labels(g)}}} {dcgm_value(field, s, g):g}")
        if bad and s in bad:
            kind = bad[s]
            if kind == "labels":
                bad_lines[out.add('DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-x" 12')] = "malformed label set"
            elif kind == "value":
                bad_lines[out.add(f"DCGM_FI_DEV_GPU_UTIL{{{dcgm_labels(0)}}} twelve")] = "is not a number"
    path.write_text(out.text())
    return bad_lines


def test_dcgm_scrapes_with_separators(db, tmp_path):
    path = tmp_path / "dcgm-node.prom"
    scrapes = 40
    bad = write_dcgm(path, scrapes, {3: "labels", 17: "value"})
    report = run(db, path)
    f = report.files[0]
    assert (f.status, f.format, f.kind) == ("ingested", "prom-text", "metrics")
    expected = scrapes * len(DCGM_FIELDS) * len(GPUS)
    assert f.stored == expected
    assert f.rejects == 2
    assert rows(db, "SELECT count(*), count(DISTINCT series_key), min(source), max(source) FROM metric_samples") == [
        (expected, len(DCGM_FIELDS) * len(GPUS), "dcgm", "dcgm")]
    got = rejects(db)
    assert [line for line, _, _ in got] == sorted(bad)
    for (line, _, reason), want in zip(got, [bad[k] for k in sorted(bad)]):
        assert want in reason, reason

    # Mean GPU utilisation and SM activity per GPU, as the test wrote them.
    util = rows(db, "SELECT host, device, avg(gpu_util_pct), avg(sm_active), count(*) FROM gpu_utilization "
                    "GROUP BY host, device ORDER BY host, device")
    for (host, device, mean_util, mean_sm, n), g in zip(util, range(len(GPUS))):
        assert (host, device) == GPUS[g][:2]
        assert n == scrapes
        assert mean_util == pytest.approx(statistics.mean(dcgm_value("DCGM_FI_DEV_GPU_UTIL", s, g) for s in range(scrapes)))
        assert mean_sm == pytest.approx(statistics.mean(dcgm_value("DCGM_FI_PROF_SM_ACTIVE", s, g) for s in range(scrapes)))

    # gpu_samples: one vocabulary, the GPU model from its label, total memory derived as used + free.
    assert rows(db, "SELECT DISTINCT gpu_model FROM gpu_samples") == [("NVIDIA H100 80GB HBM3",)]
    assert rows(db, "SELECT min(mem_total_mib), max(mem_total_mib), count(*) FROM gpu_utilization") == [
        (TOTAL_MIB, TOTAL_MIB, scrapes * len(GPUS))]
    power = rows(db, "SELECT avg(value) FROM gpu_samples WHERE metric = 'power_w' AND host = 'gpu-node-2'")[0][0]
    assert power == pytest.approx(statistics.mean(dcgm_value("DCGM_FI_DEV_POWER_USAGE", s, 2) for s in range(scrapes)))
    times = rows(db, "SELECT min(time), max(time) FROM metric_samples")[0]
    assert times == (T0, T0 + timedelta(seconds=15 * (scrapes - 1)))


def test_reingest_adds_nothing_and_overlap_is_stored_once(db, tmp_path):
    path = tmp_path / "dcgm.prom"
    write_dcgm(path, 10)
    first = run(db, path).files[0]
    assert first.stored == 10 * len(DCGM_FIELDS) * len(GPUS)
    assert run(db, path).files[0].status == "already ingested"
    # The same scrapes plus five more in another file: only the new ones are stored.
    longer = tmp_path / "dcgm-longer.prom"
    write_dcgm(longer, 15)
    second = run(db, longer).files[0]
    assert second.stored == 5 * len(DCGM_FIELDS) * len(GPUS)
    assert second.duplicates == 10 * len(DCGM_FIELDS) * len(GPUS)
    assert rows(db, "SELECT count(*) FROM metric_samples")[0][0] == 15 * len(DCGM_FIELDS) * len(GPUS)


def test_strict_rolls_back_a_file_with_rejects(db, tmp_path):
    path = tmp_path / "dcgm.prom"
    write_dcgm(path, 4, {1: "value"})
    f = run(db, path, strict=True).files[0]
    assert f.status == "rejected"
    assert rows(db, "SELECT count(*) FROM metric_samples")[0][0] == 0


def test_gzip_and_time_separator_and_scrape_labels(db, tmp_path):
    t = T0 + timedelta(hours=1)
    unix = t.replace(tzinfo=timezone.utc).timestamp()
    text = (
        f'# time: {unix:.1f} {{instance="10.0.0.7:8000",job="vllm"}}\n'
        '# TYPE vllm:num_requests_running gauge\n'
        'vllm:num_requests_running{engine="0",model_name="m"} 4.0\n'
        "# EOF\n"
    )
    path = tmp_path / "one.prom.gz"
    path.write_bytes(gzip.compress(text.encode()))
    f = run(db, path).files[0]
    assert (f.format, f.stored, f.rejects) == ("prom-text", 1, 0)
    assert rows(db, "SELECT time, host, labels::VARCHAR, source FROM metric_samples") == [
        (t, "10.0.0.7", '{"engine":"0","instance":"10.0.0.7:8000","job":"vllm","model_name":"m"}', "vllm")]


def test_timestampless_scrape_without_separator_is_rejected_clearly(db, tmp_path):
    path = tmp_path / "curl-metrics.txt"
    path.write_text(
        "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
        "# TYPE vllm:num_requests_running gauge\n"
        'vllm:num_requests_running{engine="0",model_name="m"} 3.0\n'
        "# TYPE vllm:num_requests_waiting gauge\n"
        'vllm:num_requests_waiting{engine="0",model_name="m"} 1.0\n'
        "# scrape 2025-11-22T09:00:00\n"
        'vllm:num_requests_running{engine="0",model_name="m"} 5.0\n'
        "# EOF\n"
        'vllm:num_requests_running{engine="0",model_name="m"} 6.0\n'
    )
    f = run(db, path).files[0]
    assert (f.format, f.records, f.stored, f.rejects) == ("prom-text", 4, 1, 2)
    got = rejects(db)
    assert [(line, record) for line, record, _ in got] == [(3, "lines 3-5"), (9, "line 9")]
    assert "2 sample(s) on lines 3-5 have no timestamp" in got[0][2]
    assert "# scrape <ISO 8601 time>" in got[0][2]
    # the separator's time (no zone: UTC) reaches the sample below it, and # EOF ends it
    assert rows(db, "SELECT time, value FROM metric_samples") == [(datetime(2025, 11, 22, 9), 5.0)]


def test_reader_streams_in_small_blocks_with_right_line_numbers(tmp_path):
    path = tmp_path / "dcgm.prom"
    scrapes = 30
    bad = write_dcgm(path, scrapes, {2: "value", 25: "labels"})
    ctx = ReadContext(file_id=1, workers=1, pool=lambda: None, block_size=2048)
    batches = list(prom_text.read_prom_text(Source(path, True), ctx))
    assert len(batches) > 20  # many blocks, each its own batch
    assert sum(b.rows.num_rows for b in batches if b.rows is not None) == scrapes * len(DCGM_FIELDS) * len(GPUS)
    assert sorted(r.line for b in batches for r in b.rejects) == sorted(bad)
    lines = path.read_bytes().split(b"\n")
    for r in (r for b in batches for r in b.rejects):  # offsets point at the start of the bad line
        assert path.read_bytes()[r.byte_offset:].startswith(lines[r.line - 1])


# --------------------------------------------------------------------------------------------------
# vLLM /metrics: per-sample timestamps, old and new metric names, counter resets, histograms
# --------------------------------------------------------------------------------------------------

MODEL = 'acme/llama-3.1-8b "ft" \\v2'  # a quote and a backslash, escaped in the exposition
MODEL_ESCAPED = MODEL.replace("\\", "\\\\").replace('"', '\\"')


def vllm_scrape(out: Lines, t: datetime, state: dict, old_names: bool, both_names: bool = False) -> None:
    """One vLLM /metrics answer as prometheus_client writes it, each sample stamped with t (ms)."""
    labels = f'engine="0",model_name="{MODEL_ESCAPED}"'
    stamp = ms(t)
    kv = ["vllm:gpu_cache_usage_perc"] if old_names else ["vllm:kv_cache_usage_perc"]
    queries = ["vllm:gpu_prefix_cache_queries_total"] if old_names else ["vllm:prefix_cache_queries_total"]
    itl = "vllm:time_per_output_token_seconds" if old_names else "vllm:inter_token_latency_seconds"
    if both_names:  # the transition releases exposed the deprecated names beside the new ones
        kv, queries = ["vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"], [
            "vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total"]
    out.add("# HELP vllm:num_requests_running Number of requests in model execution batches.")
    out.add("# TYPE vllm:num_requests_running gauge")
    out.add(f"vllm:num_requests_running{{{labels}}} {state['running']:.1f} {stamp}")
    out.add("# TYPE vllm:num_requests_waiting gauge")
    out.add(f"vllm:num_requests_waiting{{{labels}}} {state['waiting']:.1f} {stamp}")
    for name in kv:
        out.add(f"# TYPE {name} gauge")
        out.add(f"{name}{{{labels}}} {state['kv']} {stamp}")
    out.add("# TYPE vllm:generation_tokens_total counter")
    out.add(f"vllm:generation_tokens_total{{{labels}}} {state['gen']:.1f} {stamp}")
    out.add("# TYPE vllm:generation_tokens_created gauge")
    out.add(f"vllm:generation_tokens_created{{{labels}}} 1.7637984e+09 {stamp}")
    for name in queries:
        out.add(f"# TYPE {name} counter")
        out.add(f"{name}{{{labels}}} {state['queries']:.1f} {stamp}")
    out.add(f"# TYPE {itl} histogram")
    for le, share in (("0.01", 0.5), ("0.05", 0.9), ("+Inf", 1.0)):
        out.add(f'{itl}_bucket{{engine="0",le="{le}",model_name="{MODEL_ESCAPED}"}} {state["itl_count"] * share:.1f} {stamp}')
    out.add(f"{itl}_count{{{labels}}} {state['itl_count']:.1f} {stamp}")
    out.add(f"{itl}_sum{{{labels}}} {state['itl_sum']} {stamp}")


def test_vllm_old_and_new_names_unified_and_counter_reset(db, tmp_path):
    out = Lines()
    gen_values = []
    kv_values = []
    state = {"running": 0, "waiting": 0, "kv": 0.0, "gen": 0.0, "queries": 0.0, "itl_count": 0.0, "itl_sum": 0.0}
    t = T0
    # 20 scrapes on an old vLLM, a restart (counters start again) onto a new one, 20 more.
    for i in range(40):
        if i == 20:
            state.update(gen=0.0, queries=0.0, itl_count=0.0, itl_sum=0.0)
        state["running"] = (i * 5) % 17
        state["waiting"] = (i * 3) % 4
        state["kv"] = round(((i * 11) % 100) / 100, 2)
        state["gen"] += 100 + 10 * (i % 7)
        state["queries"] += 1000 + i
        state["itl_count"] += state["gen"] // 100
        state["itl_sum"] = round(state["itl_count"] * 0.02, 3)
        vllm_scrape(out, t, state, old_names=i < 20)
        gen_values.append(state["gen"])
        kv_values.append(state["kv"])
        t += timedelta(seconds=10)
    bad_line = out.add(f'vllm:num_requests_running{{engine="0",model_name="{MODEL_ESCAPED}"}} 1.0 1e400')
    path = tmp_path / "vllm.prom"
    path.write_text(out.text())

    f = run(db, path).files[0]
    assert (f.format, f.rejects) == ("prom-text", 1)
    assert rejects(db)[0][0] == bad_line and "outside 1970-2200" in rejects(db)[0][2]

    # Escaped label values come back as written; samples are vllm, with no host or device.
    assert rows(db, "SELECT DISTINCT model_name FROM serving_samples") == [(MODEL,)]
    assert rows(db, "SELECT DISTINCT source, host, device FROM metric_samples") == [("vllm", None, None)]

    # kv_cache_usage from both names, as one series of 40 points.
    kv = rows(db, "SELECT raw_metric, count(*) FROM serving_samples WHERE metric = 'kv_cache_usage' GROUP BY 1 ORDER BY 1")
    assert kv == [("vllm:gpu_cache_usage_perc", 20), ("vllm:kv_cache_usage_perc", 20)]
    assert rows(db, "SELECT avg(value) FROM serving_samples WHERE metric = 'kv_cache_usage'")[0][0] == pytest.approx(
        statistics.mean(kv_values))

    # Generation tokens: increases between scrapes, where a drop is a restart that counts its new value.
    expected_increase = sum(
        (b - a) if b >= a else b for a, b in zip(gen_values, gen_values[1:]))
    total, resets = rows(db, "SELECT sum(increase), count(*) FILTER (WHERE reset) FROM serving_counter_increase "
                             "WHERE metric = 'generation_tokens'")[0]
    assert (total, resets) == (expected_increase, 1)
    assert expected_increase == gen_values[19] - gen_values[0] + gen_values[-1]
    # Prefix-cache queries: the old name before the restart and the new one after make one counter.
    q = rows(db, "SELECT count(*), count(increase) FROM serving_counter_increase WHERE metric = 'prefix_cache_queries'")
    assert q == [(40, 39)]
    # Inter-token latency sums and counts under one name; buckets stay out of serving_samples.
    assert rows(db, "SELECT DISTINCT metric FROM serving_samples WHERE metric LIKE 'inter_token%' ORDER BY 1") == [
        ("inter_token_latency_seconds_count",), ("inter_token_latency_seconds_sum",)]
    assert rows(db, "SELECT count(*) FROM metric_samples WHERE metric LIKE '%_bucket'")[0][0] == 40 * 3
    assert rows(db, "SELECT count(*) FROM metric_samples WHERE metric LIKE '%_bucket' "
                    "AND json_extract_string(labels, '$.le') = '+Inf'")[0][0] == 40
    # _created gauges are kept in metric_samples and out of the serving vocabulary.
    assert rows(db, "SELECT count(*) FROM serving_samples WHERE raw_metric LIKE '%_created'")[0][0] == 0


def test_vllm_both_names_at_once_counted_once(db, tmp_path):
    out = Lines()
    state = {"running": 2, "waiting": 0, "kv": 0.5, "gen": 0.0, "queries": 0.0, "itl_count": 1.0, "itl_sum": 0.1}
    for i in range(5):
        state["queries"] += 250
        state["kv"] = 0.1 * (i + 1)
        vllm_scrape(out, T0 + timedelta(seconds=5 * i), state, old_names=False, both_names=True)
    path = tmp_path / "vllm-both.prom"
    path.write_text(out.text())
    run(db, path)
    assert rows(db, "SELECT count(*) FROM metric_samples WHERE metric IN "
                    "('vllm:kv_cache_usage_perc', 'vllm:gpu_cache_usage_perc')")[0][0] == 10
    assert rows(db, "SELECT count(*), min(raw_metric) FROM serving_samples WHERE metric = 'kv_cache_usage'") == [
        (5, "vllm:kv_cache_usage_perc")]
    assert rows(db, "SELECT sum(increase) FROM serving_counter_increase WHERE metric = 'prefix_cache_queries'")[0][0] == 1000


def test_openmetrics_seconds_timestamps_nan_inf_and_exemplars(db, tmp_path):
    t = T0 + timedelta(minutes=3)
    secs = t.replace(tzinfo=timezone.utc).timestamp()
    path = tmp_path / "om.txt"
    path.write_text(
        "# TYPE app_temperature gauge\n"
        "# UNIT app_temperature celsius\n"
        f'app_temperature{{room="a"}} NaN {secs:.3f}\n'
        f'app_temperature{{room="b"}} +Inf {secs:.3f}\n'
        "# TYPE app_requests counter\n"
        f'app_requests_total{{path="/x"}} 17 {secs:.0f} # {{trace_id="abc123"}} 1.0 {secs:.0f}\n'
        f'app_requests_created{{path="/x"}} {secs - 3600:.0f} {secs:.0f}\n'
        "# EOF\n"
    )
    f = run(db, path).files[0]
    assert (f.format, f.stored, f.rejects) == ("prom-text", 4, 0)
    got = rows(db, "SELECT metric, value, time, source FROM metric_samples ORDER BY metric, labels::VARCHAR")
    assert got == [("app_requests_created", secs - 3600, t, "prometheus"),
                   ("app_requests_total", 17.0, t, "prometheus"),
                   ("app_temperature", None, t, "prometheus"),
                   ("app_temperature", math.inf, t, "prometheus")]


# --------------------------------------------------------------------------------------------------
# Prometheus HTTP API JSON
# --------------------------------------------------------------------------------------------------

def api_matrix(series: list[tuple[dict, list]]) -> dict:
    return {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": labels, "values": values} for labels, values in series]}}


def test_prom_api_json_matrix_vector_and_rejects(db, tmp_path):
    start = T0.replace(tzinfo=timezone.utc).timestamp()
    series = []
    expected_means = {}
    for g in range(4):
        labels = {"__name__": "DCGM_FI_DEV_GPU_UTIL", "gpu": str(g), "UUID": f"GPU-{g:04d}",
                  "Hostname": "node-9", "instance": "10.1.1.9:9400", "job": "dcgm", "modelName": "NVIDIA A100-SXM4-80GB"}
        values = [[start + 30 * i, str((i * (g + 3)) % 100)] for i in range(120)]
        values[7][1] = "NaN"  # the API writes NaN for a missing value: stored as NULL
        series.append((labels, values))
        expected_means[str(g)] = statistics.mean(float(v) for _, v in values if v != "NaN")
    # An expression's result has no __name__; a broken point; a matrix followed by a vector document.
    series.append(({"gpu": "0"}, [[start, "1"]]))
    series.append(({"__name__": "DCGM_FI_DEV_POWER_USAGE", "gpu": "0", "Hostname": "node-9"},
                   [[start, "300.5"], [start + 30, "not-a-number"], [start + 60, "310.5"]]))
    doc1 = json.dumps(api_matrix(series), indent=2)
    doc2 = json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"__name__": "vllm:num_requests_running", "instance": "10.1.1.9:8000", "model_name": "m"},
         "value": [start + 3600, "7"]}]}})
    doc3 = json.dumps({"status": "error", "errorType": "bad_data", "error": "invalid parameter \"query\""})
    path = tmp_path / "export.json"
    path.write_text(doc1 + "\n" + doc2 + "\n" + doc3 + "\n")

    f = run(db, path).files[0]
    assert f.format == "prom-api-json"
    assert f.stored == 4 * 120 + 2 + 1
    got = rejects(db)
    records = sorted(r for _, r, _ in got)
    assert records == ["data.result[4]", "data.result[5].values[1]", "document[2].status"]
    reasons = {r: reason for _, r, reason in got}
    assert "no __name__ label" in reasons["data.result[4]"]
    assert "not a number" in reasons["data.result[5].values[1]"]
    assert reasons["document[2].status"] == 'the Prometheus API answered with an error: invalid parameter "query"'
    # the reject's line is where its series starts in the pretty-printed document
    doc_lines = doc1.split("\n")
    line_of_series_4 = next(i + 1 for i, line in enumerate(doc_lines) if '"gpu": "0"' in line and
                            '"__name__"' not in doc_lines[i - 1] and '"metric"' in doc_lines[i - 1])
    assert {line for line, r, _ in got if r == "data.result[4]"} == {line_of_series_4 - 2}

    means = dict(rows(db, "SELECT device, avg(gpu_util_pct) FROM gpu_utilization WHERE gpu_util_pct IS NOT NULL "
                          "GROUP BY device"))
    assert means == pytest.approx(expected_means)
    assert rows(db, "SELECT count(*) FROM metric_samples WHERE value IS NULL")[0][0] == 4
    assert rows(db, "SELECT DISTINCT host FROM metric_samples ORDER BY 1") == [("10.1.1.9",), ("node-9",)]
    assert rows(db, "SELECT time, value, host, model_name FROM serving_samples") == [
        (T0 + timedelta(hours=1), 7.0, "10.1.1.9", "m")]

    # Another export overlapping this one adds only what is new.
    more = [(labels, values + [[start + 30 * 120, "55"]]) for labels, values in series[:4]]
    path2 = tmp_path / "export-2.json"
    path2.write_text(json.dumps(api_matrix(more)))
    f2 = run(db, path2).files[0]
    assert (f2.stored, f2.duplicates) == (4, 4 * 120)


def test_prom_api_json_large_file_streams_across_chunks(db, tmp_path):
    """A 3+ MiB export: series cross the reader's 1 MiB chunks; every value arrives once."""
    start = 1_763_798_400.0
    result = []
    total = 0.0
    count = 0
    for s in range(100):
        values = []
        for i in range(1500):
            v = (s * 31 + i * 17) % 1000 / 10
            values.append([start + 15 * i, f"{v:g}"])
            total += v
            count += 1
        result.append({"metric": {"__name__": "DCGM_FI_PROF_SM_ACTIVE", "gpu": str(s % 8),
                                  "Hostname": f"n{s // 8}"}, "values": values})
    path = tmp_path / "big.json"
    path.write_text(json.dumps({"status": "success", "data": {"resultType": "matrix", "result": result}}))
    assert path.stat().st_size > 3 << 20
    f = run(db, path).files[0]
    assert (f.format, f.stored, f.rejects) == ("prom-api-json", count, 0)
    assert rows(db, "SELECT sum(value) FROM metric_samples")[0][0] == pytest.approx(total)


def test_prom_api_json_truncated_keeps_complete_series(db, tmp_path):
    full = json.dumps(api_matrix([({"__name__": "up", "job": "a"}, [[1_763_798_400 + i, "1"] for i in range(10)]),
                                  ({"__name__": "up", "job": "b"}, [[1_763_798_400 + i, "1"] for i in range(10)])]))
    path = tmp_path / "cut.json"
    path.write_text(full[: full.index('"job": "b"') + 40])
    f = run(db, path, fmt="prom-api-json").files[0]
    assert (f.stored, f.rejects) == (10, 1)
    assert rejects(db)[0][1] == "data.result[1]"


# --------------------------------------------------------------------------------------------------
# nvidia-smi --query-gpu CSV
# --------------------------------------------------------------------------------------------------

SMI_HEADER = ("timestamp, name, index, uuid, utilization.gpu [%], utilization.memory [%], memory.used [MiB], "
              "memory.total [MiB], power.draw [W], temperature.gpu, pstate")


def smi_util(poll: int, gpu: int) -> int:
    return (poll * 9 + gpu * 40) % 100


def test_nvidia_smi_csv(db, tmp_path):
    out = Lines()
    out.add(SMI_HEADER)
    bad = {}
    na_power = 0
    polls = 50
    for p in range(polls):
        stamp = (T0 + timedelta(seconds=5 * p)).strftime("%Y/%m/%d %H:%M:%S") + f".{(p * 37) % 1000:03d}"
        if p == 25:  # a run appended to the same file prints its header again
            out.add(SMI_HEADER)
        for g in range(2):
            power = "[N/A]" if (p, g) == (10, 1) else f"{120 + smi_util(p, g) * 2.5:.2f} W"
            na_power += power == "[N/A]"
            out.add(f"{stamp}, NVIDIA H100 80GB HBM3, {g}, GPU-{g}abc, {smi_util(p, g)} %, {p % 30} %, "
                    f"{30000 + 10 * p} MiB, 81559 MiB, {power}, {40 + g}, P0")
        if p == 12:
            bad[out.add(f"{stamp}, NVIDIA H100 80GB HBM3, 0, GPU-0abc, 5 %")] = "expected 11 fields"
        if p == 30:
            bad[out.add(f"{stamp}, NVIDIA H100 80GB HBM3, 2, GPU-2abc, high %, 1 %, 1 MiB, 81559 MiB, 1 W, 1, P0")] = \
                "utilization.gpu: not a number"
            bad[out.add("2025-11-22T08:00:00, NVIDIA H100 80GB HBM3, 1, GPU-1abc, 1 %, 1 %, 1 MiB, 81559 MiB, 1 W, 1, P0")] = \
                "is not YYYY/MM/DD"
    path = tmp_path / "nvidia-smi.csv"
    path.write_text(out.text())

    f = run(db, path).files[0]
    assert f.format == "nvidia-smi-csv"
    per_row = 6  # utilization x2, memory x2, power, temperature; pstate (text) is not a metric
    good_in_bad_row = per_row - 1  # the row with one bad cell (GPU 2) keeps its other samples
    assert f.stored == polls * 2 * per_row - na_power + good_in_bad_row
    assert f.rejects == 3
    got = rejects(db)
    assert [line for line, _, _ in got] == sorted(bad)
    for (line, _, reason) in got:
        assert bad[line] in reason, reason

    util = rows(db, "SELECT device, avg(gpu_util_pct), count(*), min(time), max(gpu_model) FROM gpu_utilization "
                    "WHERE gpu_util_pct IS NOT NULL GROUP BY device ORDER BY device")
    assert [device for device, *_ in util] == ["GPU-0abc", "GPU-1abc"]  # UUIDs: nvidia-smi names no host
    for g, (device, mean, n, first, model) in enumerate(util):
        want = [smi_util(p, g) for p in range(polls)]
        assert mean == pytest.approx(statistics.mean(want))
        assert n == len(want)
        assert first == T0  # local time without zone, taken as UTC
        assert model == "NVIDIA H100 80GB HBM3"
    assert rows(db, "SELECT DISTINCT source, host FROM metric_samples") == [("nvidia-smi", None)]
    assert rows(db, "SELECT max(time) FROM metric_samples")[0][0] == T0 + timedelta(seconds=5 * 49, microseconds=(49 * 37) % 1000 * 1000)
    assert rows(db, "SELECT DISTINCT metric FROM gpu_samples ORDER BY 1") == [
        ("gpu_util_pct",), ("mem_total_mib",), ("mem_used_mib",), ("mem_util_pct",), ("power_w",), ("temp_c",)]
    # Re-ingesting the same polls from a copy (one blank line more) adds nothing.
    copy = tmp_path / "copy.csv"
    copy.write_text(out.text() + "\n")
    again = run(db, copy).files[0]
    assert (again.stored, again.duplicates) == (0, f.stored)


def test_nvidia_smi_noheader_is_not_claimed_and_forced_is_rejected(db, tmp_path):
    path = tmp_path / "noheader.csv"
    path.write_text("2025/11/22 08:00:00.000, NVIDIA H100 80GB HBM3, 0, 37, 40000\n")
    assert detect(path.read_bytes(), path.name) is None
    f = run(db, path, fmt="nvidia-smi-csv").files[0]
    assert (f.stored, f.rejects) == (0, 1)
    assert "noheader output cannot be read" in rejects(db)[0][2]


# --------------------------------------------------------------------------------------------------
# Detection: each format claims its own files and none of the trace or billing files
# --------------------------------------------------------------------------------------------------

def test_sniffers_claim_their_files_and_no_trace_or_billing_file(tmp_path):
    dcgm = tmp_path / "a.prom"
    write_dcgm(dcgm, 2)
    assert detect(dcgm.read_bytes(), "a.prom").name == "prom-text"
    assert detect(b'up{job="x"} 1 1763798400000\n', "x").name == "prom-text"
    api = json.dumps(api_matrix([({"__name__": "up"}, [[1, "1"]])])).encode()
    assert detect(api, "x.json").name == "prom-api-json"
    assert detect((SMI_HEADER + "\n").encode(), "x.csv").name == "nvidia-smi-csv"

    others = [gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
              for p in sorted((REPO / "sample_traces").glob("*.json*"))]
    others += [
        b"BillingAccountId,ChargePeriodStart,ChargePeriodEnd,BilledCost,EffectiveCost,ServiceName\n"
        b"123,2025-11-01T00:00:00Z,2025-11-02T00:00:00Z,1.5,1.5,Amazon Bedrock\n",
        b'{"object": "page", "data": [{"object": "bucket", "start_time": 1730419200, "results": []}]}',
        b"identity_line_item_id,line_item_usage_start_date,line_item_unblended_cost\nabc,2025-11-01,1\n",
        b"# Title\n\nSome prose, with words.\n",
        b"name,index,value\ngpu,0,1\n",
    ]
    sniffers = [f.sniff for f in metrics.FORMATS]
    for head in others:
        assert not any(sniff(head[:65536], "file") for sniff in sniffers), head[:80]


# --------------------------------------------------------------------------------------------------
# Capacity: GPU-hours with gap handling, busy hours, peak serving concurrency
# --------------------------------------------------------------------------------------------------

def test_gpu_hours_coverage_gaps_busy_signal_and_hour_split(db, tmp_path):
    out = Lines()
    la = 'gpu="0",UUID="GPU-A",modelName="NVIDIA H100 80GB HBM3",Hostname="h1"'
    lb = 'gpu="1",UUID="GPU-B",modelName="NVIDIA H100 80GB HBM3",Hostname="h1"'
    # GPU A: every 10 s, 08:00:00-08:39:50 and 09:00:00-09:29:50 (a 20-minute hole); SM_ACTIVE 0.25
    # then 0.5, and a GPU_UTIL of 90 % that must not be used when SM_ACTIVE is there.
    a_times = [T0 + timedelta(seconds=10 * i) for i in range(240)] + \
              [T0 + timedelta(hours=1, seconds=10 * i) for i in range(180)]
    for t in a_times:
        sm = 0.25 if t.hour == 8 else 0.5
        out.add(f"DCGM_FI_PROF_SM_ACTIVE{{{la}}} {sm} {ms(t)}")
        out.add(f"DCGM_FI_DEV_GPU_UTIL{{{la}}} 90 {ms(t)}")
    # GPU B: GPU_UTIL only, 40 %, every 30 s from 08:30:15 to 09:29:45: one interval crosses 09:00.
    b_times = [T0 + timedelta(minutes=30, seconds=15 + 30 * i) for i in range(120)]
    for t in b_times:
        out.add(f"DCGM_FI_DEV_GPU_UTIL{{{lb}}} 40 {ms(t)}")
    path = tmp_path / "cap.prom"
    path.write_text(out.text())
    assert run(db, path).files[0].stored == 2 * len(a_times) + len(b_times)

    got = {(r.device, r.hour_of_day): r for r in gpu_hours(db)}
    assert sorted(got) == [("0", 8), ("0", 9), ("1", 8), ("1", 9)]
    # A: each sample covers 10 s; the last before the hole and the very last cover one median (10 s).
    assert got["0", 8].provisioned_gpu_hours == pytest.approx(2400 / 3600)
    assert got["0", 9].provisioned_gpu_hours == pytest.approx(1800 / 3600)
    assert got["0", 8].busy_gpu_hours == pytest.approx(0.25 * 2400 / 3600)
    assert got["0", 9].busy_gpu_hours == pytest.approx(0.5 * 1800 / 3600)
    assert got["0", 8].busy_signal == "sm_active"
    # B: 08:30:15-09:30:15 covered; the 08:59:45 sample's 30 s are split 15 s / 15 s.
    assert got["1", 8].provisioned_gpu_hours == pytest.approx((30 * 60 - 15) / 3600)
    assert got["1", 9].provisioned_gpu_hours == pytest.approx((30 * 60 + 15) / 3600)
    assert got["1", 9].busy_gpu_hours == pytest.approx(0.4 * (30 * 60 + 15) / 3600)
    assert (got["1", 9].busy_signal, got["1", 9].days, got["1", 9].host) == ("gpu_util", 1, "h1")
    assert all(r.measured_gpu_hours == pytest.approx(r.provisioned_gpu_hours) for r in got.values())

    # Bounds clip the intervals: [08:30, 09:15).
    clipped = {(r.device, r.hour_of_day): r.provisioned_gpu_hours
               for r in gpu_hours(db, "2025-11-22T08:30:00+00:00", datetime(2025, 11, 22, 9, 15))}
    assert clipped == pytest.approx({("0", 8): 600 / 3600, ("0", 9): 900 / 3600,
                                     ("1", 8): (30 * 60 - 15) / 3600, ("1", 9): 900 / 3600})


def test_serving_peak_concurrency(db, tmp_path):
    out = Lines()
    running = {"0": [], "1": []}
    waiting = []
    for i in range(30):
        t = T0 + timedelta(seconds=15 * i)
        out.add(f"# scrape {iso(t)} {{instance=\"srv-1:8000\"}}")
        for engine in ("0", "1"):
            r = (i * (3 if engine == "0" else 5)) % 11
            running[engine].append(r)
            out.add(f'vllm:num_requests_running{{engine="{engine}",model_name="m"}} {r}')
        w = i % 4
        waiting.append(w)
        out.add(f'vllm:num_requests_waiting{{engine="0",model_name="m"}} {w}')
    path = tmp_path / "serving.prom"
    path.write_text(out.text())
    run(db, path)
    [peak] = serving_peak_concurrency(db)
    totals = [a + b for a, b in zip(running["0"], running["1"])]
    assert (peak.host, peak.model_name, peak.samples) == ("srv-1", "m", 30)
    assert peak.peak_running == max(totals)
    assert peak.peak_running_at == T0 + timedelta(seconds=15 * totals.index(max(totals)))
    assert peak.mean_running == pytest.approx(statistics.mean(totals))
    assert peak.peak_waiting == max(waiting)
    assert peak.peak_in_system == max(t + w for t, w in zip(totals, waiting))
    ordered = sorted(totals)  # p95 by linear interpolation, as percentile_cont does
    k = 0.95 * (len(ordered) - 1)
    assert peak.p95_running == pytest.approx(ordered[int(k)] + (ordered[int(k) + 1] - ordered[int(k)]) * (k - int(k)))
    [late] = serving_peak_concurrency(db, start=T0 + timedelta(seconds=15 * 20))
    assert late.samples == 10 and late.peak_running == max(totals[20:])


def test_prom_api_json_invalid_series_is_skipped_and_the_next_read(db, tmp_path):
    good = {"metric": {"__name__": "DCGM_FI_DEV_GPU_UTIL", "gpu": "0", "Hostname": "h"},
            "values": [[1_763_798_400 + 15 * i, str(i)] for i in range(8)]}
    later = {"metric": {"__name__": "DCGM_FI_DEV_GPU_UTIL", "gpu": "1", "Hostname": "h"},
             "values": [[1_763_798_400 + 15 * i, "50"] for i in range(8)]}
    broken = '{"metric": {"__name__": "up", "job": "x"}, "values": [[1763798400, "1"] [1763798415, "1"]]}'
    text = ('{"status":"success","data":{"resultType":"matrix","result":[\n'
            + json.dumps(good) + ",\n" + broken + ",\n" + json.dumps(later) + "\n]}}\n")
    path = tmp_path / "broken.json"
    path.write_text(text)
    f = run(db, path).files[0]
    assert (f.format, f.stored, f.rejects) == ("prom-api-json", 16, 1)
    [(line, record, reason)] = rejects(db)
    assert (line, record) == (3, "data.result[1]") and reason.startswith("invalid JSON: Expecting ','")
    assert rows(db, "SELECT device, sum(value) FROM metric_samples GROUP BY 1 ORDER BY 1") == [
        ("0", float(sum(range(8)))), ("1", 400.0)]


def test_prom_text_crlf_bom_and_hostile_lines(db, tmp_path):
    stamp = ms(T0)
    lines = [
        "# TYPE up gauge",
        f'up{{job="a"}} 1 {stamp}',
        f'up{{job="a",job="b"}} 1 {stamp}',            # 3: a label twice
        f'up{{job="a"}} 1_000 {stamp}',                # 4: Python would read 1_000; no exposition writes it
        f'up{{job="a"}} 1 {stamp} 7',                  # 5: a third field
        f'up{{job="ünïcode }} \\"ok\\""}} 2 {stamp}',   # a '}' and escaped quotes inside a value
        f'{{"up.dotted", job="a"}} 1 {stamp}',         # 7: UTF-8 quoted names (Prometheus 3): not supported
        "# scrape yesterday",                          # 8: a separator whose time cannot be read
        'up{job="c"} 1',                               # 9: ... so this sample has no time
    ]
    path = tmp_path / "win.prom"
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    f = run(db, path).files[0]
    assert f.format == "prom-text"
    got = rejects(db)
    assert [line for line, _, _ in got] == [3, 4, 5, 7, 8, 9]
    reasons = [reason for _, _, reason in got]
    assert "appears twice" in reasons[0] and "not a number" in reasons[1] and "optional timestamp" in reasons[2]
    assert "quoted (UTF-8) metric names" in reasons[3] and "bad scrape separator" in reasons[4]
    assert rows(db, "SELECT json_extract_string(labels, '$.job') FROM metric_samples ORDER BY 1") == [
        ("a",), ('ünïcode } "ok"',)]


def test_vllm_prefix_cache_hits_and_preemptions_old_and_new_names(db, tmp_path):
    """Prefix-cache hits (gpu_prefix_cache_hits_total before the rename) and preemptions become one
    counter each; their increases add up to what the scrapes say, across the rename."""
    out = Lines()
    labels = f'engine="0",model_name="{MODEL_ESCAPED}"'
    hits = preempt = 0.0
    hit_values, preempt_values = [], []
    for i in range(12):
        hits += 50 + 7 * i
        preempt += i % 3
        hit_values.append(hits)
        preempt_values.append(preempt)
        stamp = ms(T0 + timedelta(seconds=15 * i))
        name = "vllm:gpu_prefix_cache_hits_total" if i < 6 else "vllm:prefix_cache_hits_total"
        out.add(f"# TYPE {name} counter")
        out.add(f"{name}{{{labels}}} {hits:.1f} {stamp}")
        out.add("# TYPE vllm:num_preemptions_total counter")
        out.add(f"vllm:num_preemptions_total{{{labels}}} {preempt:.1f} {stamp}")
    path = tmp_path / "vllm-hits.prom"
    path.write_text(out.text())
    assert run(db, path).files[0].rejects == 0
    got = dict(rows(db, "SELECT metric, sum(increase) FROM serving_counter_increase "
                        "WHERE metric IN ('prefix_cache_hits', 'preemptions') GROUP BY 1"))
    assert got == {"prefix_cache_hits": hit_values[-1] - hit_values[0], "preemptions": preempt_values[-1] - preempt_values[0]}


def test_dcgm_samples_with_their_own_timestamps(db, tmp_path):
    """A DCGM scrape saved with per-sample millisecond timestamps (as a federating Prometheus writes
    it) needs no separator lines: each sample keeps its own time."""
    out = Lines()
    expected = {}
    for s in range(8):
        t = T0 + timedelta(seconds=30 * s)
        for g in range(len(GPUS)):
            v = dcgm_value("DCGM_FI_DEV_GPU_UTIL", s, g)
            out.add(f"DCGM_FI_DEV_GPU_UTIL{{{dcgm_labels(g)}}} {v:g} {ms(t)}")
            expected[(GPUS[g][0], GPUS[g][1], t)] = v
    path = tmp_path / "dcgm-stamped.prom"
    path.write_text(out.text())
    f = run(db, path).files[0]
    assert (f.format, f.records, f.rejects) == ("prom-text", len(expected), 0)
    got = {(h, d, t): v for h, d, t, v in rows(
        db, "SELECT host, device, time, value FROM metric_samples WHERE metric = 'DCGM_FI_DEV_GPU_UTIL'")}
    assert got == expected
    assert rows(db, "SELECT DISTINCT source FROM metric_samples") == [("dcgm",)]
