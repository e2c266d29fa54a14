"""The per-host pipeline: batch contract, restore, host shards, epochs, bad rows, errors."""

from __future__ import annotations

import json
import re

import gin
import numpy as np
import pytest

from orca_jax.data import registry
from orca_jax.data.pipeline import make_batch_iterator
from orca_jax.data.streams import EmptyStreamError

from orca_data_testlib import make_rows, register_rows_task

FEATURES = (
    "decoder_input_tokens",
    "decoder_target_tokens",
    "decoder_loss_weights",
    "decoder_segment_ids",
    "decoder_positions",
)


def _host(name, length=128, batch=4, index=0, count=1, **kw):
    return make_batch_iterator(name, length, batch, process_index=index, process_count=count, **kw)


def _markers(batches, tokenizer):
    """The 'Q<i>' marker of every packed example, from its decoded input tokens."""
    found = []
    for b in batches:
        for r in range(b["decoder_segment_ids"].shape[0]):
            seg = b["decoder_segment_ids"][r]
            for s in range(1, seg.max() + 1):
                text = tokenizer.decode(b["decoder_input_tokens"][r][seg == s])
                found.append(int(re.search(r"Q(\d+) please", text).group(1)))
    return found


def _check_contract(batch, rows, length):
    assert set(batch) == set(FEATURES)
    for k in FEATURES:
        assert batch[k].dtype == np.int32 and batch[k].shape == (rows, length), k
    seg, pos, w = batch["decoder_segment_ids"], batch["decoder_positions"], batch["decoder_loss_weights"]
    assert w.sum() > 0, "all-padding batch"
    assert np.all(w[seg == 0] == 0) and np.all(pos[seg == 0] == 0)
    for r in range(rows):
        ids = seg[r][seg[r] > 0]
        if ids.size:
            assert ids[0] == 1 and np.all(np.diff(ids) >= 0) and np.all(np.diff(ids) <= 1)
            for s in range(1, ids.max() + 1):
                assert pos[r][seg[r] == s].tolist() == list(range((seg[r] == s).sum()))


@pytest.fixture(scope="module")
def demo_tasks():
    import tasks  # noqa: F401  (registers the demo tasks, as the trainer does)

    return tasks


@pytest.mark.seqio
def test_demo_tasks_produce_contract_batches(demo_tasks):
    for name in (
        "orca_demo_stage1_assistant",
        "orca_demo_stage2_expert",
        "orca_demo_answer_only",
        "orca_demo_stage2_mixture",
    ):
        it = _host(name, 256, 8, shuffle_window=500)
        for _ in range(3):
            _check_contract(next(it), 8, 256)
    it = _host("orca_demo_stage2_expert", 256, 8, split="validation", num_epochs=1)
    batches = list(it)
    stats = it.stats()
    assert stats["examples_packed"] == stats["examples/orca_demo_stage2_expert"]
    assert stats["examples_packed"] + stats.get("dropped/response_too_long", 0) == 120
    assert sum(int((b["decoder_segment_ids"] > 0).sum()) for b in batches) == it.stats()["real_tokens"]


def test_restore_reproduces_the_rest_of_the_stream(tmp_path, demo_tokenizer):
    """Across shuffle windows, packing windows, epochs and a 3-task mixture."""
    for sub in "abc":
        (tmp_path / sub).mkdir()
    name = register_rows_task(str(tmp_path / "a"), {"a.parquet": make_rows(150)}, collections=("cot", "niv2"))
    other = register_rows_task(str(tmp_path / "b"), {"b.jsonl": make_rows(60, 1000)})
    third = register_rows_task(str(tmp_path / "c"), {"c.parquet": make_rows(90, 2000)}, collections=("t0",))
    mixture = f"mix_{name}"
    registry.register_mixture(registry.MixtureSpec(mixture, (name, other, third), {name: 3.0, other: 1.0, third: 2.0}))
    kw = dict(length=96, batch=3, shuffle_window=40, pack_window=25, jsonl_block_bytes=2000, seed=7)
    reference = []
    it = _host(mixture, **kw)
    for _ in range(60):
        reference.append(next(it))
    assert it.stats()["examples/" + name] > 75  # More than one epoch of the first task.
    reference_stats = it.stats()
    for cut in (0, 1, 13, 37, 59):
        it = _host(mixture, **kw)
        for _ in range(cut):
            next(it)
        state = json.loads(json.dumps(it.state_dict()))
        assert len(json.dumps(state)) < 20_000
        stats = it.stats()
        resumed = _host(mixture, **kw)
        resumed.load_state_dict(state)
        assert resumed.stats() == stats
        for want in reference[cut:]:
            got = next(resumed)
            for k in FEATURES:
                np.testing.assert_array_equal(got[k], want[k])
        assert resumed.stats() == reference_stats


def test_restore_after_end_of_data(tmp_path):
    name = register_rows_task(str(tmp_path), {"a.parquet": make_rows(30)})
    it = _host(name, num_epochs=1)
    list(it)
    resumed = _host(name, num_epochs=1)
    resumed.load_state_dict(json.loads(json.dumps(it.state_dict())))
    with pytest.raises(StopIteration):
        next(resumed)


def test_restore_rejects_other_settings(tmp_path):
    name = register_rows_task(str(tmp_path), {"a.parquet": make_rows(30)})
    state = _host(name).state_dict()
    with pytest.raises(ValueError, match="sequence_length"):
        _host(name, length=64).load_state_dict(state)


@pytest.mark.parametrize(
    "files,count,row_group",
    [
        ({"a.parquet": make_rows(400)}, 2, 10),  # 40 row groups: whole units per host.
        ({"a.parquet": make_rows(400)}, 3, 10),
        ({"a.parquet": make_rows(400)}, 3, 50),  # 8 row groups: rows split across hosts.
        ({"a.jsonl": make_rows(101)}, 2, 50),  # One unit: rows split across hosts.
        ({"a.parquet": make_rows(50), "b.jsonl": make_rows(77, 500)}, 4, 50),
    ],
)
def test_host_shards_are_disjoint_and_cover_everything(tmp_path, demo_tokenizer, files, count, row_group):
    name = register_rows_task(str(tmp_path), files, row_group_size=row_group)
    all_ids = sorted(int(r["question"].split()[0][1:]) for rows in files.values() for r in rows)
    per_host = []
    for index in range(count):
        it = _host(name, 256, 2 * count, index=index, count=count, num_epochs=1)
        batches = list(it)
        assert all(b["decoder_input_tokens"].shape == (2, 256) for b in batches)
        per_host.append(_markers(batches, demo_tokenizer))
    for i in range(count):
        for j in range(i + 1, count):
            assert not set(per_host[i]) & set(per_host[j])
    assert sorted(x for ids in per_host for x in ids) == all_ids


def test_one_epoch_sees_every_example_exactly_once_then_stops(tmp_path, demo_tokenizer):
    name = register_rows_task(str(tmp_path), {"a.parquet": make_rows(123)})
    it = _host(name, 256, 4, num_epochs=1)
    batches = list(it)
    assert sorted(_markers(batches, demo_tokenizer)) == list(range(123))
    last = batches[-1]
    assert last["decoder_loss_weights"].sum() > 0  # A partial last batch is filled, not empty.
    with pytest.raises(StopIteration):
        next(it)
    two = list(_host(name, 256, 4, num_epochs=2))
    assert sorted(_markers(two, demo_tokenizer)) == sorted(list(range(123)) * 2)


def test_prefetch_does_not_change_batches_or_state(tmp_path):
    name = register_rows_task(str(tmp_path), {"a.parquet": make_rows(150)})
    sync, ahead = _host(name, prefetch=0, pack_window=30), _host(name, prefetch=3, pack_window=30)
    for _ in range(12):
        a, b = next(sync), next(ahead)
        assert all(np.array_equal(a[k], b[k]) for k in FEATURES)
        assert sync.state_dict() == ahead.state_dict()
        assert sync.stats() == ahead.stats()
    ahead.close()


def test_same_seed_same_batches_other_seed_other_order(tmp_path):
    name = register_rows_task(str(tmp_path), {"a.parquet": make_rows(200)})
    a, b, c = (_host(name, seed=s) for s in (1, 1, 2))
    first_a = [next(a)["decoder_input_tokens"] for _ in range(5)]
    first_b = [next(b)["decoder_input_tokens"] for _ in range(5)]
    first_c = [next(c)["decoder_input_tokens"] for _ in range(5)]
    assert all(np.array_equal(x, y) for x, y in zip(first_a, first_b))
    assert not all(np.array_equal(x, y) for x, y in zip(first_a, first_c))


def _write_bad_jsonl(path, good):
    lines = [json.dumps(r).encode() for r in good]
    lines += [
        json.dumps({"id": "cot.900", "system_prompt": "", "question": "Q900 please answer: x"}).encode(),  # missing
        json.dumps({"id": "cot.901", "system_prompt": "", "question": "q", "response": 5}).encode(),  # non-string
        json.dumps({"id": "cot.902", "system_prompt": "", "question": "q", "response": " "}).encode(),  # empty
        b'{"id": "cot.903", "system_prompt": "", "question": "\xff", "response": "r"}',  # invalid utf-8
        json.dumps({"id": "dolly.904", "system_prompt": "", "question": "q", "response": "r"}).encode(),  # prefix
        json.dumps(
            {"id": "niv.905", "system_prompt": "", "question": "q", "response": "r\ud800"}
        ).encode(),  # surrogate
        b"{broken json",
        b'"just a string"',
    ]
    with open(path, "wb") as f:
        f.write(b"\n".join(lines) + b"\n")


def test_bad_rows_are_dropped_and_counted_by_reason(tmp_path, demo_tokenizer):
    _write_bad_jsonl(tmp_path / "a.jsonl", make_rows(20))
    name = register_rows_task(str(tmp_path), {})
    it = _host(name, 256, 4, num_epochs=1)
    batches = list(it)
    assert sorted(_markers(batches, demo_tokenizer)) == list(range(20))
    stats = it.stats()
    assert stats["examples_read"] == 28
    assert {k: v for k, v in stats.items() if k.startswith("bad_rows/") and v} == {
        "bad_rows/missing_field": 1,
        "bad_rows/non_string_field": 1,
        "bad_rows/empty_response": 1,
        "bad_rows/invalid_utf8": 2,
        "bad_rows/unknown_id_prefix": 1,
        "bad_rows/malformed_json": 2,
    }
    assert stats["examples_packed"] == 20


def test_mostly_bad_data_never_gives_an_all_padding_batch(tmp_path):
    bad = [{"id": f"cot.{i}", "system_prompt": "", "question": "q", "response": ""} for i in range(400)]
    name = register_rows_task(str(tmp_path), {"a.parquet": bad[:200] + make_rows(3) + bad[200:]})
    it = _host(name, 128, 8, pack_window=16)
    for _ in range(6):
        assert next(it)["decoder_loss_weights"].sum() > 0
    assert it.stats()["bad_rows/empty_response"] >= 400


def test_all_bad_data_stops_or_raises_clearly(tmp_path):
    bad = [{"id": f"x.{i}", "system_prompt": "", "question": "q", "response": "r"} for i in range(10)]
    name = register_rows_task(str(tmp_path), {"a.parquet": bad})
    it = _host(name, num_epochs=1)
    with pytest.raises(StopIteration):
        next(it)
    assert it.stats()["bad_rows/unknown_id_prefix"] == 10
    with pytest.raises(EmptyStreamError, match="no usable row"):
        next(_host(name))


def test_rows_whose_response_cannot_fit_are_dropped_and_counted(tmp_path, demo_tokenizer):
    name = register_rows_task(str(tmp_path), {"a.parquet": make_rows(40)})
    it = _host(name, 24, 4, num_epochs=1, min_prompt_tokens=20)
    batches = list(it)
    stats = it.stats()
    assert stats["dropped/response_too_long"] > 0
    assert stats["dropped/response_too_long"] + stats["examples_packed"] == 40
    for b in batches:
        _check_contract(b, 4, 24)
    with pytest.raises(EmptyStreamError, match="fits the sequence length"):
        next(_host(name, 12, 4, min_prompt_tokens=20))


def test_over_long_rows_keep_header_and_whole_response(tmp_path, demo_tokenizer):
    """Long questions are shortened (header kept, counted); responses always end with EOS."""
    name = register_rows_task(str(tmp_path), {"a.parquet": make_rows(20, long_every=2)})
    it = _host(name, 96, 4, num_epochs=1, pack=False, min_prompt_tokens=4)
    seen, shortened = set(), 0
    for b in it:
        for r in range(4):
            w, seg = b["decoder_loss_weights"][r], b["decoder_segment_ids"][r]
            if not w.sum():
                continue
            targets = b["decoder_target_tokens"][r][w == 1]
            assert targets[-1] == demo_tokenizer.eos_id  # the response was not cut
            response = demo_tokenizer.decode(targets)
            marker = int(re.match(r"R(\d+) ", response).group(1))
            assert response == make_rows(1, start=marker)[0]["response"]
            seen.add(marker)
            text = demo_tokenizer.decode(b["decoder_input_tokens"][r][seg > 0])
            # The chat header survives whole: user header first (or the system block), assistant header last.
            assert text.startswith("<|im_start|>")
            assert "<|im_start|>user\n" in text
            assert f"<|im_end|>\n<|im_start|>assistant\n R{marker} " in text
            if marker % 2 == 0:  # Long question: its start is cut, its end kept.
                assert f"Q{marker} please" not in text and re.search(r"filler\s*<\|im_end\|>", text)
            shortened += f"Q{marker} please" not in text
    assert seen == set(range(20))
    stats = it.stats()
    assert stats["prompt_truncated"] == shortened >= 10 and stats["dropped/response_too_long"] == 0


def test_data_quality_counted_once_per_row_and_file(tmp_path, demo_tokenizer):
    """10 rows missing a field, read by 4 sub-collection tasks for 4 epochs: 10, not 160."""
    good = make_rows(40)
    bad = [{k: v for k, v in r.items() if k != "response"} for r in make_rows(10, start=100)]
    dupes = [dict(r, response=r["response"] + " again") for r in good[:3]]
    for r in good + bad + dupes:
        r.setdefault("system_prompt", "")
    directory = tmp_path / "d"
    directory.mkdir()
    names = [
        register_rows_task(
            str(directory), {"a.parquet": good[:20] + bad, "b.jsonl": good[20:] + dupes}, collections=(c,)
        )
        for c in ("cot", "niv2", "t0", "flan2021")
    ]
    (directory / "c.parquet").write_bytes(b"")  # an empty shard: skipped and reported
    registry.register_mixture(registry.MixtureSpec("test_quality_mixture", tuple(names), {n: 1.0 for n in names}))
    it = _host("test_quality_mixture", 256, 4, num_epochs=4, pack=False)
    batches = list(it)
    stats = it.stats()
    assert stats["bad_rows/missing_field"] == 10 and stats["duplicate_ids"] == 3 and stats["files_without_rows"] == 1
    assert stats["examples_packed"] == 4 * 40  # four epochs of the 40 distinct ids, no duplicate trained
    markers = _markers(batches, demo_tokenizer)
    assert sorted(markers) == sorted(list(range(40)) * 4)
    summary = it.data_summary()
    files = summary["files"]
    assert files[str(directory / "a.parquet")] == {"rows": 30, "bad_rows/missing_field": 10}
    assert files[str(directory / "b.jsonl")] == {"rows": 23, "duplicate_ids": 3}
    assert files[str(directory / "c.parquet")] == {"rows": 0, "empty": 1}
    written = it.write_data_summary(str(tmp_path / "run"))
    assert json.loads(open(written).read())["files"] == files and written.endswith("/data_summary.json")


def test_zero_byte_shard_alone_is_skipped_not_a_crash(tmp_path):
    name = register_rows_task(str(tmp_path), {"a.parquet": make_rows(8)})
    (tmp_path / "b.parquet").write_bytes(b"")
    it = _host(name, 128, 4, num_epochs=1)
    list(it)
    assert it.stats()["examples_packed"] == 8 and it.stats()["files_without_rows"] == 1


def test_errors_name_the_problem(tmp_path):
    registry.register_task(
        registry.TaskSpec("test_missing_files", {"train": (str(tmp_path / "nope-*.parquet"),)}, "t", "x")
    )
    with pytest.raises(FileNotFoundError, match="nope-"):
        _host("test_missing_files")
    name = register_rows_task(str(tmp_path), {"a.parquet": make_rows(5)})
    with pytest.raises(ValueError, match="batch_size 10 is not divisible by process_count 4"):
        make_batch_iterator(name, 64, 10, process_index=0, process_count=4)
    with pytest.raises(ValueError, match="unknown task or mixture 'no_such_task'"):
        _host("no_such_task")
    with pytest.raises(TypeError, match="pack_windw"):
        _host(name, pack_windw=3)
    with pytest.raises(ValueError, match="no split 'test'"):
        _host(name, split="test")


def test_defaults_come_from_jax_and_gin(tmp_path):
    name = register_rows_task(str(tmp_path), {"a.parquet": make_rows(30)})
    try:
        gin.parse_config(f"make_batch_iterator.mixture_or_task_name = '{name}'\nmake_batch_iterator.pack_window = 5")
        it = make_batch_iterator(sequence_length=64, batch_size=2)
    finally:
        gin.clear_config()
    state = it.state_dict()["config"]
    assert (state["process_index"], state["process_count"], state["pack_window"]) == (0, 1, 5)
    assert next(it)["decoder_input_tokens"].shape == (2, 64)


def test_duplicate_ids_are_dropped_across_hosts(tmp_path, demo_tokenizer):
    """The first row of an id is trained once over all hosts; the later copies are dropped on whichever host reads them."""
    good = make_rows(60)
    files = {f"{i}.jsonl": good[i * 10 : i * 10 + 10] for i in range(6)}
    files["late.jsonl"] = [dict(r, response="copy " + r["response"]) for r in good[::7]]  # 9 later copies
    name = register_rows_task(str(tmp_path), files)
    markers, duplicates = [], 0
    for index in range(2):
        it = _host(name, 256, 4, index=index, count=2, num_epochs=1, pack=False, jsonl_block_bytes=512)
        batches = list(it)
        markers += _markers(batches, demo_tokenizer)
        duplicates += it.stats()["duplicate_ids"]
        for b in batches:
            for r in range(b["decoder_target_tokens"].shape[0]):
                targets = b["decoder_target_tokens"][r][b["decoder_loss_weights"][r] == 1]
                assert not demo_tokenizer.decode(targets).startswith("copy")  # the first row of each id is kept
    assert sorted(markers) == list(range(60)) and duplicates == 9
