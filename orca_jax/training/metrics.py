"""Training metrics: per-step device scalars gathered at metric steps only, written as
TensorBoard events (tensorboardX), JSON lines (`metrics.jsonl`) and a progress bar (tqdm)
on a terminal or log lines otherwise. Only the primary host writes.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

import jax
import numpy as np
from etils import epath

from orca_jax.training import flops

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"


class Window:
    """Per-step metrics since the last metric step; fetched from the device all at once."""

    def __init__(self):
        self.steps: list[dict[str, jax.Array]] = []
        self.data_wait_s = 0.0
        self.start = time.perf_counter()

    def add(self, metrics: dict[str, jax.Array], data_wait_s: float) -> None:
        self.steps.append(metrics)  # device arrays: no host sync here
        self.data_wait_s += data_wait_s

    def summarize(
        self, *, slots_per_step: int, flops_per_token: float, num_devices: int, peak_flops: float | None
    ) -> tuple[dict[str, float], np.ndarray]:
        """Window means and rates (blocks on the device), and the per-step `skipped` flags."""
        fetched = jax.device_get(self.steps)
        elapsed = time.perf_counter() - self.start
        n = len(fetched)
        col = {k: np.array([m[k] for m in fetched]) for k in fetched[0]}
        finite = col["skipped"] == 0
        slots_per_s = n * slots_per_step / elapsed
        summary = {
            "loss": _mean(col["loss"][finite]),
            "cross_entropy": _mean(col["cross_entropy"][finite]),
            "grad_norm": _mean(col["grad_norm"][finite]),
            "learning_rate": float(col["learning_rate"][-1]),
            "skipped_steps": int((~finite).sum()),
            "step_time_s": elapsed / n,
            "data_wait_s": self.data_wait_s / n,
            "tokens_per_s": float(col["real_tokens"].sum()) / elapsed,
            "loss_tokens_per_s": float(col["loss_tokens"].sum()) / elapsed,
            "slots_per_s": slots_per_s,
            "padding_fraction": 1.0 - float(col["real_tokens"].sum()) / (n * slots_per_step),
        }
        utilisation = flops.mfu(flops_per_token, slots_per_s, num_devices, peak_flops)
        if utilisation is not None:
            summary["mfu"] = utilisation
        return summary, col["skipped"]


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if x.size else float("nan")


class MetricsWriter:
    """Writes scalars to `<run_dir>/metrics.jsonl`, `<run_dir>/tensorboard/` and the console."""

    def __init__(self, run_dir: str, total_steps: int, start_step: int, name: str = "train"):
        self.enabled = jax.process_index() == 0
        self.name = name
        self.path = epath.Path(run_dir) / METRICS_FILE
        self.tb = self.bar = self._lines = None
        if not self.enabled:
            return
        truncate_records(self.path, start_step)
        from tensorboardX import SummaryWriter

        # purge_step: TensorBoard drops the events of the steps a resumed run redoes.
        self.tb = SummaryWriter(
            str(epath.Path(run_dir) / "tensorboard"), purge_step=start_step + 1 if start_step else None
        )
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total_steps, initial=start_step, desc=name, dynamic_ncols=True)

    def write(self, step: int, scalars: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
        """One record: numeric `scalars` go to TensorBoard too; `extra` (JSON) only to the file."""
        if not self.enabled:
            return
        self._append(json.dumps({"step": step, **scalars, **(extra or {})}) + "\n")
        for key, value in scalars.items():
            if isinstance(value, (int, float)):
                self.tb.add_scalar(f"{self.name}/{key}", value, step)
        self.tb.flush()
        self._console(step, scalars)

    def _append(self, line: str) -> None:
        """Append locally; object stores (gs://) cannot append, so rewrite the whole file there."""
        if "://" not in str(self.path):
            with open(self.path, "a") as f:  # one write of a whole line, flushed to disk
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
            return
        if self._lines is None:
            self._lines = self.path.read_text() if self.path.exists() else ""
        self._lines += line
        self.path.write_text(self._lines)

    def _console(self, step: int, scalars: dict[str, Any]) -> None:
        shown = {k: scalars[k] for k in ("loss", "learning_rate", "grad_norm", "tokens_per_s", "mfu") if k in scalars}
        text = " ".join(f"{k}={v:.4g}" for k, v in shown.items())
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix_str(text)
        else:
            log.info("%s step %d: %s", self.name, step, text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.tb is not None:
            self.tb.close()


def complete_records(text: str) -> list[dict[str, Any]]:
    """The records of a metrics file's text: whole JSON lines only (a line torn by a kill
    mid-write, and any line appended onto it, is skipped)."""
    lines = text.split("\n")[:-1]  # the part after the last newline is a torn (or empty) line
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            records.append(record)
    return records


def truncate_records(path: epath.Path, last_step: int) -> int:
    """Keep the whole records of `path` up to `last_step` (the step a run resumes from), so
    that the steps it redoes are not recorded twice; returns how many were dropped."""
    if not path.exists():
        return 0
    text = path.read_text()
    kept = [r for r in complete_records(text) if r["step"] <= last_step]
    new_text = "".join(json.dumps(r) + "\n" for r in kept)
    if new_text == text:
        return 0
    tmp = path.parent / (path.name + ".tmp")
    tmp.write_text(new_text)
    tmp.replace(path)  # atomic locally: a kill here leaves the old file or the new one
    dropped = text.count("\n") + (not text.endswith("\n")) - len(kept)
    log.info("%s: kept %d records up to step %d, dropped %d past it or torn", path, len(kept), last_step, dropped)
    return dropped


def read_metrics(run_dir: str) -> list[dict[str, Any]]:
    """The records of `<run_dir>/metrics.jsonl` (for tests and notebooks)."""
    path = epath.Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    return complete_records(path.read_text())
