"""Sources: Parquet/JSONL reading in units, globs over shards, URIs, seeking, host sharding, validation."""

from __future__ import annotations

import gzip
import json
import os

import pytest

from orca_jax.data import fileio, rows, sources

from orca_data_testlib import make_rows


def _read_all(units):
    out = []
    for u in units:
        out.extend(sources.iter_unit_rows(u, 0, batch_rows=7))
    return out


def test_parquet_units_are_row_groups_and_cover_all_rows(tmp_path):
    data = make_rows(230)
    path = str(tmp_path / "a.parquet")
    sources.write_rows(path, data, row_group_size=50)
    units = sources.list_units([path])
    assert [u.end for u in units] == [50, 50, 50, 50, 30]
    assert [r["id"] for r in _read_all(units)] == [r["id"] for r in data]


@pytest.mark.parametrize("block", [1, 64, 257, 10_000])
def test_jsonl_blocks_cover_every_line_once(tmp_path, block):
    data = make_rows(57)
    path = str(tmp_path / "a.jsonl")
    with open(path, "w") as f:  # Blank lines in between are not rows.
        for i, r in enumerate(data):
            f.write(json.dumps(r) + ("\n\n" if i % 10 == 0 else "\n"))
    units = sources.list_units([path], jsonl_block_bytes=block)
    assert len(units) == -(-os.path.getsize(path) // block)
    assert [r["id"] for r in _read_all(units)] == [r["id"] for r in data]


def test_gzipped_jsonl_is_one_unit(tmp_path):
    data = make_rows(20)
    path = str(tmp_path / "a.jsonl.gz")
    with gzip.open(path, "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in data)
    units = sources.list_units([path], jsonl_block_bytes=16)
    assert len(units) == 1
    assert [r["id"] for r in _read_all(units)] == [r["id"] for r in data]


@pytest.mark.parametrize("ext", ["parquet", "jsonl"])
def test_seek_to_a_row_inside_a_unit(tmp_path, ext):
    data = make_rows(120)
    path = str(tmp_path / f"a.{ext}")
    sources.write_rows(path, data, row_group_size=120)
    (unit,) = sources.list_units([path], jsonl_block_bytes=1 << 20)
    got = list(sources.iter_unit_rows(unit, start_row=77, batch_rows=10))
    assert [r["id"] for r in got] == [r["id"] for r in data[77:]]
    strided = list(sources.iter_unit_rows(unit, start_row=77, batch_rows=10, offset=1, stride=3))
    assert len(strided) == 120 - 77
    assert [r and r["id"] for r in strided] == [r["id"] if i % 3 == 1 else None for i, r in enumerate(data) if i >= 77]


def test_glob_over_shards_and_missing_pattern_error(tmp_path):
    for i in range(3):
        sources.write_rows(str(tmp_path / f"part-{i:05d}-of-00003.parquet"), make_rows(5, 5 * i))
    sources.write_rows(str(tmp_path / "other.jsonl"), make_rows(2, 100))
    paths = fileio.expand_patterns([str(tmp_path / "part-*.parquet"), str(tmp_path / "*.jsonl")])
    assert [os.path.basename(p) for p in paths] == [
        "other.jsonl",
        "part-00000-of-00003.parquet",
        "part-00001-of-00003.parquet",
        "part-00002-of-00003.parquet",
    ]
    missing = str(tmp_path / "nothing-*.parquet")
    with pytest.raises(FileNotFoundError, match="nothing-\\*.parquet"):
        fileio.expand_patterns([str(tmp_path / "part-*.parquet"), missing])


def test_uri_paths_use_pyarrow_filesystems(tmp_path):
    """file:// goes through the same pyarrow.fs code as gs://."""
    (tmp_path / "sub").mkdir()
    sources.write_rows(str(tmp_path / "sub" / "a.parquet"), make_rows(10))
    sources.write_rows(str(tmp_path / "sub" / "b.jsonl"), make_rows(10, 10))
    uri = "file://" + str(tmp_path)
    assert fileio.glob(uri + "/sub/*.jsonl") == [uri + "/sub/b.jsonl"]
    assert fileio.glob(uri + "/**/a.parquet") == [uri + "/sub/a.parquet"]
    assert fileio.glob(uri + "/sub/a.parquet") == [uri + "/sub/a.parquet"]
    assert fileio.glob(uri + "/sub/zzz*.parquet") == []
    units = sources.list_units(fileio.expand_patterns(uri + "/sub/*"), jsonl_block_bytes=300)
    assert [r["id"] for r in _read_all(units)] == [r["id"] for r in make_rows(20)]


@pytest.mark.parametrize(
    "num_units,count,per_host", [(13, 2, 1), (13, 4, 2), (13, 2, 8), (3, 4, 1), (1, 2, 1), (2, 2, 1)]
)
def test_host_shards_are_disjoint_and_cover(tmp_path, num_units, count, per_host):
    data = make_rows(num_units * 10)
    path = str(tmp_path / "a.parquet")
    sources.write_rows(path, data, row_group_size=10)
    units = sources.list_units([path])
    assert len(units) == num_units
    seen = []
    for index in range(count):
        shards = sources.shard_units(units, index, count, min_units_per_host=per_host)
        whole_units = num_units >= count * per_host
        assert all((s.stride == 1) == whole_units for s in shards)
        for s in shards:
            for r in sources.iter_unit_rows(s.unit, offset=s.offset, stride=s.stride):
                if r is not None:
                    seen.append(r["id"])
    assert sorted(seen) == sorted(r["id"] for r in data)
    assert len(seen) == len(set(seen))


def test_whole_unit_shards_are_size_balanced(tmp_path):
    for i, n in enumerate([300, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20]):
        sources.write_rows(str(tmp_path / f"s{i:02d}.parquet"), make_rows(n, 1000 * i), row_group_size=1000)
    units = sources.list_units(fileio.expand_patterns(str(tmp_path / "*.parquet")))
    loads = [sum(s.unit.weight for s in sources.shard_units(units, h, 2, min_units_per_host=4)) for h in range(2)]
    assert sorted(loads) == [300, 320]  # The big file alone on one host, the small ones on the other.


def test_jsonl_blocks_shrink_for_host_balance(tmp_path):
    path = str(tmp_path / "a.jsonl")
    sources.write_rows(path, make_rows(4000))
    size = os.path.getsize(path)
    assert len(sources.list_units([path])) == 1
    units = sources.list_units([path], min_jsonl_units=8)
    assert len(units) == max(1, -(-size // max(sources.MIN_JSONL_BLOCK_BYTES, -(-size // 8))))
    assert len(units) > 1


def test_unparseable_lines_become_bad_rows(tmp_path):
    path = str(tmp_path / "a.jsonl")
    with open(path, "wb") as f:
        f.write(json.dumps(make_rows(1)[0]).encode() + b"\n")
        f.write(b'{"id": "cot.1", "question": "\xff\xfe"}\n')
        f.write(b"{not json\n")
        f.write(b"[1, 2]\n")
    got = _read_all(sources.list_units([path]))
    assert isinstance(got[0], dict)
    assert got[1:] == [
        sources.BadRow("invalid_utf8"),
        sources.BadRow("malformed_json"),
        sources.BadRow("malformed_json"),
    ]


def _row(**overrides):
    base = {"id": "niv.1", "system_prompt": "", "question": "Q?", "response": "A."}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not _DROP}


_DROP = object()


@pytest.mark.parametrize(
    "raw,reason",
    [
        (_row(response=_DROP), rows.MISSING_FIELD),
        (_row(system_prompt=None), rows.MISSING_FIELD),
        (_row(question=3), rows.NON_STRING_FIELD),
        (_row(id=12), rows.NON_STRING_FIELD),
        (_row(response="  \n"), rows.EMPTY_RESPONSE),
        (_row(question=""), rows.EMPTY_QUESTION),
        (_row(response="bad \ud800 surrogate"), rows.INVALID_UTF8),
        (_row(response=b"\xff"), rows.INVALID_UTF8),
        (_row(id="dolly.3"), rows.UNKNOWN_ID_PREFIX),
        (_row(id="nodot"), rows.UNKNOWN_ID_PREFIX),
        (sources.BadRow("malformed_json"), rows.MALFORMED_JSON),
    ],
)
def test_validation_reasons(raw, reason):
    assert rows.validate_row(raw, teacher="t") == reason


def test_valid_rows():
    ok = rows.validate_row(_row(id="flan.7", response=b"caf\xc3\xa9"), teacher="gpt-4")
    assert ok == rows.OrcaRow("flan.7", "", "Q?", "café", "flan2021", "gpt-4")
    assert rows.validate_row(_row(id="t0.1"), teacher="t").collection == "t0"
    assert rows.validate_row(_row(id="cot.1"), teacher="t").collection == "cot"
    foreign = rows.validate_row(
        _row(id="orca_dpo_pairs.validation.3"), teacher="t", unknown_prefix_collection="flan2021"
    )
    assert foreign.collection == "flan2021"


def test_parquet_missing_and_mistyped_columns(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = str(tmp_path / "odd.parquet")
    pq.write_table(pa.table({"id": ["cot.1", "cot.2"], "question": ["a", "b"], "response": [1, 2]}), path)
    got = [rows.validate_row(r, teacher="t") for r in _read_all(sources.list_units([path]))]
    assert got == [rows.MISSING_FIELD, rows.MISSING_FIELD]
    pq.write_table(pa.table({"id": ["cot.1"], "system_prompt": [""], "question": ["a"], "response": [1]}), path)
    assert [rows.validate_row(r, teacher="t") for r in _read_all(sources.list_units([path]))] == [rows.NON_STRING_FIELD]


@pytest.mark.parametrize("block", [16, 1 << 20])
def test_utf8_bom_does_not_cost_the_first_row(tmp_path, block):
    data = make_rows(5)
    path = tmp_path / "bom.jsonl"
    path.write_bytes(sources.UTF8_BOM + "".join(json.dumps(r) + "\n" for r in data).encode())
    got = _read_all(sources.list_units([str(path)], jsonl_block_bytes=block))
    assert [r["id"] for r in got] == [r["id"] for r in data]  # no BadRow('malformed_json') first
    assert [rows.validate_row(r, teacher="t").id for r in got] == [r["id"] for r in data]


@pytest.mark.parametrize("ext", ["parquet", "jsonl"])
def test_zero_byte_file_is_skipped_with_a_warning_naming_it(tmp_path, ext, caplog):
    good = str(tmp_path / f"a.{ext}")
    sources.write_rows(good, make_rows(10), row_group_size=4)
    empty = tmp_path / f"b.{ext}"
    empty.write_bytes(b"")
    units = sources.list_units([good, str(empty)])
    assert {u.path for u in units} == {good}
    assert [r["id"] for r in _read_all(units)] == [r["id"] for r in make_rows(10)]
    assert f"{empty} is empty (0 bytes): skipped" in caplog.text


def test_corrupt_parquet_fails_naming_the_file(tmp_path):
    path = tmp_path / "bad.parquet"
    sources.write_rows(str(path), make_rows(10))
    path.write_bytes(path.read_bytes()[:-20])  # footer cut off
    with pytest.raises(sources.DataFileError, match=f"{path}: not a readable Parquet file"):
        sources.list_units([str(path)])


def test_damaged_parquet_page_fails_naming_file_and_row_group(tmp_path):
    path = tmp_path / "bad.parquet"
    sources.write_rows(str(path), make_rows(200), row_group_size=100)
    (first, second) = sources.list_units([str(path)])
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(str(path)).metadata.row_group(1).column(0)
    data = bytearray(path.read_bytes())
    start = meta.data_page_offset
    data[start : start + 64] = b"\x00" * 64  # garbage over the page header of row group 1
    path.write_bytes(bytes(data))
    assert len(list(sources.iter_unit_rows(first))) == 100
    with pytest.raises(sources.DataFileError, match=f"{path}: row group 1 could not be read"):
        list(sources.iter_unit_rows(second))


def test_truncated_gzip_fails_naming_the_file(tmp_path):
    path = tmp_path / "a.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in make_rows(400))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    (unit,) = sources.list_units([str(path)])
    with pytest.raises(sources.DataFileError, match=f"{path}: unreadable after row"):
        list(sources.iter_unit_rows(unit))
