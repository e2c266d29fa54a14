"""Teacher-augmentation throughput: rows/s of `orca_jax.augment` against the fake teacher.

The fake OpenAI-compatible server runs in its own process (so it does not share the GIL
with the client being measured) and answers every request after an artificial latency.
The figure covers the whole run path: manifest streaming, the async httpx client,
group-committed fsync'd JSONL writes and progress accounting.

    python benchmarks/augment_throughput.py                       # 4000 rows, concurrency 64, 20 ms
    python benchmarks/augment_throughput.py --rows 20000 --latency 0.05 --faults
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from orca_jax.augment.run import RunOptions, run_augmentation
from orca_jax.augment.sampling.sample import SamplingSpec, sample_manifest
from orca_jax.augment.store.layout import OutputLayout
from orca_jax.augment.teacher.client import TeacherConfig
from orca_jax.testing.synthetic_flan import write_synthetic_flan


def start_server(latency: float, faults: bool) -> tuple[subprocess.Popen, str]:
    """Start `python -m orca_jax.testing.fake_teacher` on a free port; return it and its URL."""
    cmd = [sys.executable, "-m", "orca_jax.testing.fake_teacher", "--port", "0", "--latency", str(latency)]
    if faults:
        cmd += ["--rate-429", "0.01", "--rate-500", "0.02", "--retry-after", "0.05"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    if not line.startswith("fake teacher at "):
        proc.kill()
        raise RuntimeError(f"fake teacher did not start: {line!r}")
    return proc, line.removeprefix("fake teacher at ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4000, help="queries to run")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.02, help="server latency per request, seconds")
    parser.add_argument("--faults", action="store_true", help="inject 1%% 429s and 2%% 500s")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    per_collection = args.rows // 4
    rows = {
        "cot": args.rows - 3 * per_collection,
        "niv2": per_collection,
        "t0": per_collection,
        "flan2021": per_collection,
    }
    server, base_url = start_server(args.latency, args.faults)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            source = write_synthetic_flan(
                Path(tmp) / "flan.jsonl", rows=rows, tasks={"cot": 8, "niv2": 40, "t0": 20, "flan2021": 30}
            )
            layout = OutputLayout.at(Path(tmp) / "out")
            meta = sample_manifest([source], layout, SamplingSpec(size_factor=1.0))
            config = TeacherConfig(
                base_url=base_url,
                model="fake-teacher",
                use_auth=False,
                concurrency=args.concurrency,
                backoff_base_s=0.05,
            )
            start = time.perf_counter()
            summary = run_augmentation(layout, config, None, RunOptions(use_tqdm=False, progress_interval_s=3600))
            elapsed = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(10)
    done = summary.written.total
    ideal = args.concurrency / args.latency if args.latency else float("inf")
    print(f"augment throughput: {done}/{meta.rows} rows in {elapsed:.2f} s = {done / elapsed:.1f} rows/s")
    print(
        f"  concurrency {args.concurrency}, server latency {args.latency * 1000:.0f} ms (latency-bound ideal {ideal:.0f} rows/s), faults {'on' if args.faults else 'off'}"
    )
    print(
        f"  rows {summary.written.rows}, kept apart {summary.written.kept_apart}, failures {summary.written.failures}"
    )


if __name__ == "__main__":
    main()
