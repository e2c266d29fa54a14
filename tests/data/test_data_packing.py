"""Packing: best-fit-decreasing fill, row layout (segments, positions, shifted targets, loss), restore."""

from __future__ import annotations

import json

import numpy as np
import pytest

from orca_jax.data.packing import PackedStream, best_fit_decreasing, fill_ratio, rows_from_bins
from orca_jax.data.preprocessors import TokenizedExample, build_example
from orca_jax.testing.orca_like import orca_like_examples, orca_like_lengths

PAD = 999


def _examples(n, seed=0, max_len=60):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        p, r = int(rng.integers(0, max_len // 2)), int(rng.integers(1, max_len // 2))
        out.append(
            build_example(rng.integers(3, 900, p), rng.integers(3, 900, r), bos_id=1, eos_id=2, sequence_length=64)
        )
    return out


def test_best_fit_decreasing_places_every_item_once_within_capacity():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 100, 500).tolist()
    bins = best_fit_decreasing(lengths, 100)
    assert sorted(i for b in bins for i in b) == list(range(500))
    assert all(sum(lengths[i] for i in b) <= 100 for b in bins)
    lower_bound = max(-(-sum(lengths) // 100), sum(x > 50 for x in lengths))
    assert len(bins) <= 1.06 * lower_bound  # Near optimal.
    with pytest.raises(ValueError):
        best_fit_decreasing([101], 100)


def test_fill_on_orca_like_lengths_beats_98_percent():
    prompt, response = orca_like_lengths(20_000, seed=3)
    positions = np.minimum(prompt + response + 1, 2048).tolist()  # BOS + prompt + response + EOS - 1.
    used, slots = 0, 0
    for start in range(0, len(positions), 2048):
        window = positions[start : start + 2048]
        bins = best_fit_decreasing(window, 2048)
        used += sum(window)
        slots += len(bins) * 2048
    assert used / slots >= 0.98
    assert 2.5 <= len(positions) / (slots / 2048) <= 3.0  # Orca: ~2.7 examples per sequence.


def test_row_layout_segments_positions_targets_and_loss():
    examples = _examples(40)
    bins = [[examples[i] for i in b] for b in best_fit_decreasing([len(e.tokens) - 1 for e in examples], 64)]
    batch = rows_from_bins(bins, 64, PAD, num_rows=len(bins) + 2)
    assert set(batch) == {
        "decoder_input_tokens",
        "decoder_target_tokens",
        "decoder_loss_weights",
        "decoder_segment_ids",
        "decoder_positions",
    }
    assert all(v.dtype == np.int32 and v.shape == (len(bins) + 2, 64) for v in batch.values())
    for r, row_examples in enumerate(bins):
        seg = batch["decoder_segment_ids"][r]
        for s, ex in enumerate(row_examples, start=1):
            where = np.flatnonzero(seg == s)
            n = len(ex.tokens) - 1
            # One contiguous block per example, nothing from another example inside it.
            assert where.tolist() == list(range(where[0], where[0] + n))
            assert batch["decoder_input_tokens"][r, where].tolist() == ex.tokens[:-1].tolist()
            # Shifted within the segment: the last target is this example's last token.
            assert batch["decoder_target_tokens"][r, where].tolist() == ex.tokens[1:].tolist()
            assert batch["decoder_positions"][r, where].tolist() == list(range(n))
            weights = batch["decoder_loss_weights"][r, where]
            response_targets = np.arange(1, n + 1) >= ex.prompt_length
            assert weights.tolist() == response_targets.astype(int).tolist()
            assert weights.sum() >= 1
        pad = seg == 0
        assert np.all(batch["decoder_input_tokens"][r, pad] == PAD)
        assert np.all(batch["decoder_loss_weights"][r, pad] == 0)
        assert np.all(batch["decoder_positions"][r, pad] == 0)
        assert seg[: pad.argmax() if pad.any() else 64].min() >= 1  # Padding only at the end.
    assert np.all(batch["decoder_segment_ids"][-2:] == 0)  # Filler rows are all padding.


def test_loss_weights_cover_response_and_eos_only():
    ex = build_example([10, 11], [20, 21, 22], bos_id=1, eos_id=2, sequence_length=32)
    batch = rows_from_bins([[ex, ex]], 16, PAD)
    targets = batch["decoder_target_tokens"][0]
    weighted = targets[batch["decoder_loss_weights"][0] == 1].tolist()
    assert weighted == [20, 21, 22, 2, 20, 21, 22, 2]


def test_row_overflow_is_an_error():
    ex = build_example(list(range(3, 20)), [5], bos_id=1, eos_id=2, sequence_length=64)
    with pytest.raises(ValueError, match="overflows"):
        rows_from_bins([[ex, ex]], 20, PAD)


class _ListSource:
    """A restorable example stream over a list."""

    def __init__(self, examples):
        self.examples, self.pos = examples, 0

    def __next__(self) -> TokenizedExample:
        if self.pos >= len(self.examples):
            raise StopIteration
        self.pos += 1
        return self.examples[self.pos - 1]

    def get_state(self):
        return {"pos": self.pos}

    def set_state(self, state):
        self.pos = state["pos"]


def _rows_key(rows):
    return [[e.tokens.tobytes() for e in r] for r in rows]


@pytest.mark.parametrize("pack", [True, False])
def test_packed_stream_restores_exactly(pack):
    examples = orca_like_examples(300, sequence_length=512, seed=5)
    full = list(PackedStream(_ListSource(examples), 512, window_size=64, pack=pack, seed=1))
    assert sum(len(r) for r in full) == len(examples)
    for cut in (0, 1, 7, len(full) // 2, len(full) - 1):
        stream = PackedStream(_ListSource(examples), 512, window_size=64, pack=pack, seed=1)
        head = [next(stream) for _ in range(cut)]
        state = json.loads(json.dumps(stream.get_state()))
        resumed = PackedStream(_ListSource(examples), 512, window_size=64, pack=pack, seed=1)
        resumed.set_state(state)
        assert _rows_key(head + list(resumed)) == _rows_key(full)


def test_fill_ratio_of_packed_orca_like_rows():
    examples = orca_like_examples(3000, sequence_length=2048, seed=11)
    rows = list(PackedStream(_ListSource(examples), 2048, window_size=2048, seed=0))
    assert fill_ratio(rows_from_bins(rows, 2048, PAD)) >= 0.98
