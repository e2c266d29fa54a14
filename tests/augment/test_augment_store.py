"""Append-only JSONL: torn-line repair, fast id reads, the folder lock, resume state."""

from __future__ import annotations

import pytest

from orca_jax.augment.sampling.sample import SamplingSpec, sample_manifest
from orca_jax.augment.store.durable import (
    AppendOnlyJsonl,
    encode_line,
    iter_ids,
    iter_rows,
    quarantine_path,
    repair_jsonl,
)
from orca_jax.augment.store.layout import OutputLayout, OutputLocked
from orca_jax.augment.store.manifest import load_meta
from orca_jax.augment.store.state import repair_outputs, scan_outputs


def _rows(n: int, start: int = 0) -> list[bytes]:
    return [
        encode_line({"id": f"niv.{i}", "response": f'text {i}\nwith "quotes" and ünïcode'})
        for i in range(start, start + n)
    ]


def test_append_and_read_back(tmp_path):
    path = tmp_path / "a.jsonl"
    with AppendOnlyJsonl(path) as out:
        assert out.append(_rows(3)) == 3
        out.append(_rows(2, start=3))
    assert list(iter_ids(path)) == [f"niv.{i}" for i in range(5)]
    assert [r["id"] for r in iter_rows(path)] == [f"niv.{i}" for i in range(5)]
    assert path.read_bytes().count(b"\n") == 5  # newlines inside values are escaped


def test_torn_last_line_is_ignored_then_cut(tmp_path):
    path = tmp_path / "a.jsonl"
    with AppendOnlyJsonl(path) as out:
        out.append(_rows(4))
    whole = path.read_bytes()
    torn = whole + _rows(1, start=4)[0][:25]  # what kill -9 during a write leaves
    path.write_bytes(torn)
    assert list(iter_ids(path)) == [f"niv.{i}" for i in range(4)]
    result = repair_jsonl(path)
    assert result.torn_bytes == 25 and path.read_bytes() == whole
    assert not repair_jsonl(path).changed


def test_torn_file_with_no_complete_line(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"id": "niv.0", "resp')
    assert repair_jsonl(path).torn_bytes == 21 and path.read_bytes() == b""


def test_invalid_complete_last_line_is_quarantined(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"".join(_rows(2)) + b'{"id": "niv.9", "x": \n')
    assert repair_jsonl(path).bad_lines == 1
    assert list(iter_ids(path)) == ["niv.0", "niv.1"]
    assert quarantine_path(path).read_bytes() == b'{"id": "niv.9", "x": \n'


@pytest.mark.parametrize(
    "damage",
    [
        lambda line: line[:30] + b"\xff\xfe" + line[32:],  # invalid UTF-8, id prefix intact
        lambda line: line[: len(line) // 2] + b"\n",  # cut in half, id prefix intact
    ],
    ids=["invalid_utf8", "cut_in_half"],
)
def test_damaged_line_in_the_middle_is_found_and_quarantined(tmp_path, damage):
    path = tmp_path / "a.jsonl"
    lines = _rows(5)
    damaged = damage(lines[2])
    assert damaged.startswith(b'{"id": "niv.2"')  # a prefix match would call it done
    path.write_bytes(b"".join(lines[:2]) + damaged + b"".join(lines[3:]))
    assert list(iter_ids(path)) == ["niv.0", "niv.1", "niv.3", "niv.4"]
    result = repair_jsonl(path)
    assert result.bad_lines == 1 and result.ids == ("niv.0", "niv.1", "niv.3", "niv.4")
    assert path.read_bytes() == b"".join(lines[:2] + lines[3:])
    assert quarantine_path(path).read_bytes() == damaged  # nothing lost
    assert not repair_jsonl(path).changed


def test_lock_is_exclusive(tmp_path):
    layout = OutputLayout.at(tmp_path / "out")
    with layout.lock():
        with pytest.raises(OutputLocked):
            with layout.lock():
                pass
    with layout.lock():  # released
        pass


def test_scan_marks_done_failed_and_duplicates(tmp_path, flan_jsonl):
    layout = OutputLayout.at(tmp_path / "out")
    sample_manifest([flan_jsonl], layout, SamplingSpec(size_factor=1e-4))
    meta = load_meta(layout)
    with AppendOnlyJsonl(layout.shard_path(0, 0)) as out:
        out.append(_rows(5))
    with AppendOnlyJsonl(layout.shard_path(1, 0)) as out:
        out.append(_rows(1, start=4))  # duplicate of niv.4
    layout.shard_path(1, 1).touch()  # empty shard from a run killed at once
    with AppendOnlyJsonl(layout.kept_apart) as out:
        out.append([encode_line({"id": "t0.3", "kept_apart_reason": "length"})])
    with AppendOnlyJsonl(layout.failures) as out:
        out.append(
            [
                encode_line({"id": "flan.1", "reason": "timeout"}),
                encode_line({"id": "niv.2", "reason": "http_400"}),
                encode_line({"id": "flan.1", "reason": "server_error"}),
            ]
        )
    repair_outputs(layout)
    assert not layout.shard_path(1, 1).exists()
    state = scan_outputs(layout, meta)
    assert state.done_count == 6 and state.duplicates == 1 and state.kept_apart_rows == 1
    assert state.is_done("niv.2") and not state.is_failed("niv.2")  # answered later: not failed
    assert state.is_failed("flan.1") and state.failed_count == 1
    assert state.failure_reasons == {"server_error": 1}  # the latest record counts
    assert layout.next_run_index() == 2
