"""Packing fill ratio and throughput: orca-jax's packer vs SeqIO's (and grain's) on the same Orca-like data.

    python benchmarks/packing.py [--num_examples 10000] [--sequence_length 2048] [--skip_grain]

Every packer gets the same examples (orca_jax.testing.orca_like: log-normal prompt and
response lengths clipped to 20-1500 and 5-1500 tokens, truncated to fit) and
produces the same five decoder features as int32 [rows, L] batches of 64 rows.
fill = real tokens / token slots; tokens/s = real tokens per second of packing
(data already in memory; SeqIO's input is a cached tf.data.Dataset).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from orca_jax.data.packing import PackedStream, rows_from_bins  # noqa: E402
from orca_jax.data.preprocessors import TokenizedExample  # noqa: E402
from orca_jax.testing.orca_like import orca_like_examples  # noqa: E402

ROWS_PER_BATCH = 64


class _ListSource:
    """The examples as a restorable stream (what PackedStream reads in the pipeline)."""

    def __init__(self, examples: list[TokenizedExample]):
        self._examples, self._pos = examples, 0

    def __next__(self) -> TokenizedExample:
        if self._pos >= len(self._examples):
            raise StopIteration
        self._pos += 1
        return self._examples[self._pos - 1]

    def get_state(self) -> dict:
        return {"pos": self._pos}

    def set_state(self, state: dict) -> None:
        self._pos = state["pos"]


def bench_orca_jax(examples: list[TokenizedExample], length: int, window: int) -> tuple[float, float, int]:
    """(fill, tokens/s, rows) of windowed best-fit-decreasing + the batch layout."""
    start = time.perf_counter()
    stream = PackedStream(_ListSource(examples), length, window_size=window, seed=0)
    real = rows = 0
    while True:
        bins = [b for _, b in zip(range(ROWS_PER_BATCH), stream)]
        if not bins:
            break
        batch = rows_from_bins(bins, length, pad_id=32000, num_rows=len(bins))
        real += int((batch["decoder_segment_ids"] > 0).sum())
        rows += len(bins)
    seconds = time.perf_counter() - start
    return real / (rows * length), real / seconds, rows


def bench_seqio(examples: list[TokenizedExample], length: int) -> tuple[float, float, int]:
    """(fill, tokens/s, rows) of seqio.PrefixLMFeatureConverter(pack=True) (greedy packing in TF)."""
    import seqio
    import tensorflow as tf

    # SeqIO concatenates inputs + targets; leaving BOS out gives it the same n - 1 positions per example.
    inputs = [e.tokens[1 : e.prompt_length] for e in examples]
    targets = [e.tokens[e.prompt_length :] for e in examples]
    ds = tf.data.Dataset.from_tensor_slices(
        {"inputs": tf.ragged.constant(inputs, dtype=tf.int32), "targets": tf.ragged.constant(targets, dtype=tf.int32)}
    ).cache()
    for _ in ds:  # Fill the cache outside the timed region.
        pass
    converter = seqio.PrefixLMFeatureConverter(pack=True, apply_length_check=False)
    start = time.perf_counter()
    packed = converter(ds, {"inputs": length // 2, "targets": length - length // 2})
    real = rows = 0
    for batch in packed.batch(ROWS_PER_BATCH).as_numpy_iterator():
        real += int((batch["decoder_segment_ids"] > 0).sum())
        rows += batch["decoder_segment_ids"].shape[0]
    seconds = time.perf_counter() - start
    return real / (rows * length), real / seconds, rows


def bench_grain(examples: list[TokenizedExample], length: int, bins: int) -> tuple[float, float, int]:
    """(fill, tokens/s, rows) of grain.experimental.BestFitPackIterDataset (online best fit over `bins` bins)."""
    import grain
    import grain.experimental

    def features(i, _):
        e = examples[i]
        return {
            "decoder_input_tokens": e.inputs(),
            "decoder_target_tokens": e.targets(),
            "decoder_loss_weights": e.loss_weights(),
        }

    ds = grain.MapDataset.range(len(examples)).map_with_index(features).to_iter_dataset()
    ds = grain.experimental.BestFitPackIterDataset(
        ds,
        length_struct={k: length for k in ("decoder_input_tokens", "decoder_target_tokens", "decoder_loss_weights")},
        num_packing_bins=bins,
        shuffle_bins=False,
    ).batch(ROWS_PER_BATCH, drop_remainder=False)
    start = time.perf_counter()
    real = rows = 0
    for batch in ds:
        seg = batch["decoder_input_tokens_segment_ids"]
        real += int((seg > 0).sum())
        rows += seg.shape[0]
    seconds = time.perf_counter() - start
    return real / (rows * length), real / seconds, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num_examples", type=int, default=10_000)
    parser.add_argument("--sequence_length", type=int, default=2048)
    parser.add_argument("--window", type=int, default=2048, help="orca-jax packing window (examples)")
    parser.add_argument("--skip_grain", action="store_true")
    args = parser.parse_args()

    examples = orca_like_examples(args.num_examples, args.sequence_length, seed=0)
    positions = np.array([len(e.tokens) - 1 for e in examples])
    print(
        f"data: {len(examples)} Orca-like examples, mean {positions.mean():.0f} positions "
        f"(max {positions.max()}), sequence length {args.sequence_length}"
    )
    results = [
        (
            f"orca_jax best-fit-decreasing (window {args.window})",
            bench_orca_jax(examples, args.sequence_length, args.window),
        )
    ]
    results.append(("seqio PrefixLMFeatureConverter(pack=True)", bench_seqio(examples, args.sequence_length)))
    if not args.skip_grain:
        for bins in (256, 1024):
            results.append(
                (f"grain BestFitPackIterDataset ({bins} bins)", bench_grain(examples, args.sequence_length, bins))
            )
    print(f"{'packer':48s} {'fill':>7s} {'ex/row':>7s} {'rows':>6s} {'tokens/s':>11s}")
    for name, (fill, tps, rows) in results:
        print(f"{name:48s} {fill:7.4f} {len(examples) / rows:7.2f} {rows:6d} {tps:11.3e}")
    ours, seqio_result = results[0][1], results[1][1]
    print(
        f"orca_jax vs seqio: fill {ours[0]:.4f} vs {seqio_result[0]:.4f}, throughput x{ours[1] / seqio_result[1]:.1f}"
    )


if __name__ == "__main__":
    main()
