"""Whole runs against a faulty fake teacher: exactly one result per query, resumable."""

from __future__ import annotations

import json
import logging
import socket
import time

import pyarrow.parquet as pq
import pytest

from orca_jax.augment.cli import main
from orca_jax.augment.run import RunOptions, run_augmentation
from orca_jax.augment.sampling.sample import SamplingSpec, sample_manifest
from orca_jax.augment.store.durable import iter_rows
from orca_jax.augment.store.finalize import IncompleteOutput, finalize
from orca_jax.augment.store.layout import OutputLayout
from orca_jax.augment.store.manifest import iter_entries
from orca_jax.augment.store.output_report import build_report
from orca_jax.augment.store.run_config import TeacherMismatch
from orca_jax.augment.store.schema import KEPT_APART_FIELDS, ROW_FIELDS, ROW_SCHEMA
from orca_jax.augment.teacher.redaction import Secret
from orca_jax.testing.fake_teacher import (
    BAD_REQUEST_MARKER,
    CONTENT_FILTER_MARKER,
    FLAKY_MARKER,
    LENGTH_MARKER,
    FaultConfig,
    expected_digest,
)
from orca_jax.testing.synthetic_flan import write_synthetic_flan

MARKERS = {LENGTH_MARKER: 12, CONTENT_FILTER_MARKER: 12, BAD_REQUEST_MARKER: 8}
OPTIONS = RunOptions(flush_interval_s=0.05, shard_rows=120, use_tqdm=False)


@pytest.fixture
def layout(tmp_path):
    """A folder with a ~500-query manifest whose queries carry a few outcome markers."""
    source = write_synthetic_flan(tmp_path / "flan.jsonl", markers=MARKERS)
    out = OutputLayout.at(tmp_path / "out")
    sample_manifest([source], out, SamplingSpec(size_factor=1e-4, quota_overrides={"cot": 40}))
    return out


def _outcomes(layout):
    data = [row for shard in layout.data_shards() for row in iter_rows(shard)]
    kept = list(iter_rows(layout.kept_apart)) if layout.kept_apart.exists() else []
    failures = list(iter_rows(layout.failures)) if layout.failures.exists() else []
    return data, kept, failures


def _assert_exactly_once(layout, allow_failed=()):
    """One result per manifest id: a training row, a kept-apart row, or a failure."""
    entries = {e.id: e for e in iter_entries(layout)}
    data, kept, failures = _outcomes(layout)
    finished = [r["id"] for r in data + kept]
    assert len(finished) == len(set(finished)), "duplicate rows"
    failed = {f["id"] for f in failures} - set(finished)
    assert set(finished) | failed == set(entries), "missing ids"
    assert failed <= set(allow_failed)
    for row in data:
        entry = entries[row["id"]]
        assert tuple(row) == ROW_FIELDS
        assert row["question"] == entry.question and row["system_prompt"] == entry.system_prompt
        assert row["system_message_id"] == entry.system_message_id and row["collection"] == entry.collection
        assert row["response"].startswith(f"[{expected_digest(entry.system_prompt, entry.question)}]")
        assert row["finish_reason"] == "stop"
    for row in kept:
        assert tuple(row) == KEPT_APART_FIELDS and row["kept_apart_reason"] in ("length", "content_filter")
    return data, kept, failed


def _marked(layout, marker):
    return {e.id for e in iter_entries(layout) if marker in e.question}


@pytest.mark.slow
def test_run_with_every_fault_gives_exactly_one_row_per_query(
    layout, fake_teacher, teacher_config, all_faults, api_key
):
    server = fake_teacher(latency_s=0.002, faults=all_faults)
    summary = run_augmentation(layout, teacher_config(server.base_url), Secret(api_key), OPTIONS)
    assert summary.ok and summary.queued == 534
    bad = _marked(layout, BAD_REQUEST_MARKER)
    data, kept, failed = _assert_exactly_once(layout, allow_failed=bad)
    assert failed == bad and bad
    assert {r["id"] for r in kept if r["kept_apart_reason"] == "length"} == _marked(layout, LENGTH_MARKER)
    assert {r["id"] for r in kept if r["kept_apart_reason"] == "content_filter"} == _marked(
        layout, CONTENT_FILTER_MARKER
    )
    assert all(server.stats[f"fault_{f}"] > 0 for f in ("429", "500", "timeout", "drop", "malformed"))
    assert len(layout.data_shards()) == -(-len(data) // 120)  # rolled every 120 rows

    report = build_report(layout, price_prompt_per_1k=0.5, price_completion_per_1k=2.0)
    assert report["totals"] == {
        "sampled": 534,
        "rows": len(data),
        "kept_apart": len(kept),
        "failed": len(bad),
        "pending": 0,
    }
    assert report["failures_by_reason"] == {"http_400": len(bad)}
    assert report["kept_apart_by_reason"] == {
        "length": len(_marked(layout, LENGTH_MARKER)),
        "content_filter": len(_marked(layout, CONTENT_FILTER_MARKER)),
    }
    tokens = report["tokens"]
    assert tokens["prompt"] == sum(r["prompt_tokens"] for r in data + kept)
    assert report["estimated_cost"]["total"] == pytest.approx(
        tokens["prompt"] / 1000 * 0.5 + tokens["completion"] / 1000 * 2.0
    )

    before = server.stats["requests"]  # a second run has nothing left to ask
    again = run_augmentation(layout, teacher_config(server.base_url), Secret(api_key), OPTIONS)
    assert again.queued == 0 and server.stats["requests"] == before


def test_resume_after_partial_run_and_torn_line(layout, fake_teacher, teacher_config, api_key):
    server = fake_teacher()
    config = teacher_config(server.base_url)
    first = run_augmentation(
        layout, config, Secret(api_key), RunOptions(limit=150, flush_interval_s=0.05, use_tqdm=False)
    )
    assert first.queued == 150
    shard = layout.data_shards()[-1]
    with open(shard, "ab") as handle:  # a write cut short by kill -9
        handle.write(b'{"id": "flan.999", "system_prompt": "You are')
    second = run_augmentation(layout, config, Secret(api_key), OPTIONS)
    assert second.already_done + second.skipped_failed == 150
    _assert_exactly_once(layout, allow_failed=_marked(layout, BAD_REQUEST_MARKER))
    assert shard.read_bytes().endswith(b"\n")


def test_failures_are_retried_only_with_the_flag(tmp_path, fake_teacher, teacher_config, api_key):
    source = write_synthetic_flan(tmp_path / "flan.jsonl", markers={FLAKY_MARKER: 30})
    layout = OutputLayout.at(tmp_path / "out")
    sample_manifest([source], layout, SamplingSpec(size_factor=1.0))
    flaky = _marked(layout, FLAKY_MARKER)
    server = fake_teacher()
    config = teacher_config(server.base_url, max_retries=1)
    run_augmentation(layout, config, Secret(api_key), OPTIONS)
    assert build_report(layout)["failures_by_reason"] == {"server_error": len(flaky)}
    with pytest.raises(IncompleteOutput):
        finalize(layout)

    server.flaky = False  # the outage is over
    before = server.stats["requests"]
    skipped = run_augmentation(layout, config, Secret(api_key), OPTIONS)
    assert skipped.queued == 0 and skipped.skipped_failed == len(flaky) and server.stats["requests"] == before
    retried = run_augmentation(
        layout, config, Secret(api_key), RunOptions(retry_failures=True, flush_interval_s=0.05, use_tqdm=False)
    )
    assert retried.queued == len(flaky) and retried.written.rows == len(flaky)
    _assert_exactly_once(layout)
    assert build_report(layout)["complete"]


def test_fatal_key_error_stops_without_losing_anything(layout, fake_teacher, teacher_config, api_key):
    server = fake_teacher()
    summary = run_augmentation(layout, teacher_config(server.base_url), Secret("sk-not-the-right-one-77"), OPTIONS)
    assert summary.fatal_error and "401" in summary.fatal_error and not summary.ok
    assert sum(1 for _ in layout.data_shards()) == 0 and not layout.failures.exists()
    run_augmentation(layout, teacher_config(server.base_url), Secret(api_key), OPTIONS)
    _assert_exactly_once(layout, allow_failed=_marked(layout, BAD_REQUEST_MARKER))


def test_another_teacher_is_refused(layout, fake_teacher, teacher_config, api_key):
    server = fake_teacher()
    run_augmentation(layout, teacher_config(server.base_url), Secret(api_key), RunOptions(limit=10, use_tqdm=False))
    with pytest.raises(TeacherMismatch):
        run_augmentation(layout, teacher_config(server.base_url, model="other-teacher"), Secret(api_key), OPTIONS)
    saved = json.loads(layout.run_config.read_text())
    assert saved["api_key_env"] == teacher_config(server.base_url).api_key_env and len(saved["runs"]) == 1


def test_finalize_writes_openorca_parquet(layout, fake_teacher, teacher_config, api_key):
    server = fake_teacher()
    run_augmentation(layout, teacher_config(server.base_url), Secret(api_key), OPTIONS)
    with pytest.raises(IncompleteOutput):  # the BAD_REQUEST queries failed
        finalize(layout)
    report = finalize(layout, rows_per_file=200, allow_incomplete=True)
    data, kept, _ = _outcomes(layout)
    parts = sorted(layout.final_dir.glob("train-*.parquet"))
    assert [p.name for p in parts] == [f"train-{i:05d}-of-{len(parts):05d}.parquet" for i in range(len(parts))]
    tables = [pq.read_table(p) for p in parts]
    assert all(t.schema.equals(ROW_SCHEMA) for t in tables)
    rows = [r for t in tables for r in t.to_pylist()]
    assert sorted(r["id"] for r in rows) == sorted(r["id"] for r in data) and report["totals"]["rows"] == len(rows)
    assert tables[0].column_names[:4] == ["id", "system_prompt", "question", "response"]
    kept_table = pq.read_table(layout.final_dir / "kept_apart.parquet")
    assert kept_table.num_rows == len(kept) and "kept_apart_reason" in kept_table.column_names
    assert json.loads((layout.final_dir / "report.json").read_text())["totals"] == report["totals"]


@pytest.mark.slow
def test_cli_sample_run_report_finalize(tmp_path, fake_teacher, api_key_env, capsys):
    source = write_synthetic_flan(tmp_path / "flan.parquet", fmt="parquet")
    out = str(tmp_path / "out")
    server = fake_teacher(faults=FaultConfig(rate_500=0.1, rate_429=0.05, retry_after="0.02"))
    run_args = [
        "run",
        "--out-dir",
        out,
        "--input",
        str(source),
        "--size-factor",
        "1e-4",
        "--base-url",
        server.base_url,
        "--model",
        "fake-teacher",
        "--api-key-env",
        api_key_env,
        "--backoff-base",
        "0.01",
        "--flush-interval",
        "0.05",
        "--price-prompt-per-1k",
        "1.0",
        "--price-completion-per-1k",
        "2.0",
        "--no-progress-bar",
    ]
    assert main(run_args) == 0  # samples first (no manifest yet), then runs
    assert "sampled 494: rows 494, kept apart 0, failed 0, pending 0  (complete)" in capsys.readouterr().out
    assert main(["report", "--out-dir", out, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["complete"] and report["estimated_cost"]["total"] > 0
    assert main(["finalize", "--out-dir", out]) == 0
    assert sum(pq.read_table(p).num_rows for p in (tmp_path / "out" / "final").glob("train-*.parquet")) == 494
    assert main(["sample", "--out-dir", out, "--input", str(source)]) == 1  # never resampled
    assert main(["sample", "--out-dir", out, "--input", str(source), "--force"]) == 1  # not even forced, once run
    assert main(["subset", "--from", out, "--out-dir", str(tmp_path / "gpt4"), "--size", "100", "--seed", "3"]) == 0
    assert (
        main(
            [
                "sample",
                "--out-dir",
                str(tmp_path / "q"),
                "--input",
                str(source),
                "--quota",
                "cot=5",
                "--size-factor",
                "1e-4",
            ]
        )
        == 0
    )
    assert "{'cot': 5, 'niv2': 44, 't0': 200, 'flan2021': 250}" in capsys.readouterr().out
    assert (
        main(
            [
                "run",
                "--out-dir",
                str(tmp_path / "empty"),
                "--base-url",
                server.base_url,
                "--model",
                "m",
                "--api-key-env",
                api_key_env,
            ]
        )
        == 1
    )


@pytest.mark.parametrize("damage", ["invalid_utf8", "cut_in_half"])
def test_damaged_line_mid_shard_is_quarantined_and_asked_again(tmp_path, fake_teacher, teacher_config, api_key, damage):
    source = write_synthetic_flan(tmp_path / "flan.jsonl")
    layout = OutputLayout.at(tmp_path / "out")
    total = sample_manifest([source], layout, SamplingSpec(size_factor=1e-4)).rows
    server = fake_teacher(latency_s=0.0)
    config = teacher_config(server.base_url)
    assert run_augmentation(layout, config, Secret(api_key), OPTIONS).ok
    shard = layout.data_shards()[0]
    lines = shard.read_bytes().splitlines(keepends=True)
    victim = lines[len(lines) // 2]
    victim_id = json.loads(victim)["id"]
    broken = victim[:40] + b"\xff\xfe" + victim[42:] if damage == "invalid_utf8" else victim[: len(victim) // 2] + b"\n"
    shard.write_bytes(b"".join(lines[: len(lines) // 2]) + broken + b"".join(lines[len(lines) // 2 + 1 :]))
    with pytest.raises(IncompleteOutput, match="1 queries pending"):
        finalize(layout)  # finalize sees the damage too (and quarantines it)
    requests_before = server.stats["requests"]
    summary = run_augmentation(layout, config, Secret(api_key), OPTIONS)
    assert summary.ok and summary.queued == 1 and server.stats["requests"] == requests_before + 1
    report = finalize(layout)
    assert report["complete"] and report["totals"]["rows"] == total
    ids = [row["id"] for row in _outcomes(layout)[0]]
    assert len(ids) == len(set(ids)) == total and victim_id in ids
    quarantined = (shard.parent / "quarantine" / shard.name).read_bytes()
    assert quarantined == broken  # nothing lost
    table = pq.read_table(layout.final_dir / "train-00000-of-00001.parquet")
    assert table.num_rows == total and len(set(table.column("id").to_pylist())) == total


def _refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def test_cli_unreachable_endpoint_stops_fast_naming_it(tmp_path, api_key, api_key_env, caplog):
    source = write_synthetic_flan(tmp_path / "flan.jsonl")
    url = _refused_url()
    out = str(tmp_path / "out")
    args = [
        "run",
        "--out-dir",
        out,
        "--input",
        str(source),
        "--size-factor",
        "1e-4",
        "--base-url",
        url,
        "--model",
        "m",
        "--api-key-env",
        api_key_env,
        "--concurrency",
        "1",
        "--backoff-base",
        "0.05",
        "--max-connection-errors",
        "3",
        "--max-retries",
        "50",
        "--no-progress-bar",
        "--progress-interval",
        "0",
    ]
    start = time.monotonic()
    with caplog.at_level(logging.INFO):
        assert main(args) == 1
    assert time.monotonic() - start < 10  # 50 retries with backoff would take minutes
    text = caplog.text
    assert f"cannot reach the teacher endpoint {url}" in text and api_key not in text
    assert "failed attempts 3 (connection_error 3)" in text  # progress counted them as they happened
    assert not (tmp_path / "out" / "failures.jsonl").exists()  # nothing recorded as failed: all asked again later


@pytest.mark.slow
def test_cli_exit_status_when_queries_failed(tmp_path, fake_teacher, api_key_env, caplog):
    source = write_synthetic_flan(tmp_path / "flan.jsonl", markers={BAD_REQUEST_MARKER: 3})
    server = fake_teacher()
    out = str(tmp_path / "out")
    args = [
        "run",
        "--out-dir",
        out,
        "--input",
        str(source),
        "--size-factor",
        "1e-4",
        "--base-url",
        server.base_url,
        "--model",
        "fake-teacher",
        "--api-key-env",
        api_key_env,
        "--flush-interval",
        "0.05",
        "--no-progress-bar",
    ]
    with caplog.at_level(logging.ERROR):
        assert main(args) == 3
    assert "1 queries failed permanently (http_400 1;" in caplog.text and "--allow-failures" in caplog.text
    assert main([*args, "--allow-failures"]) == 0  # nothing left to ask; the failures are accepted
    assert main([*args, "--retry-failures"]) == 3  # asked again, failed again
