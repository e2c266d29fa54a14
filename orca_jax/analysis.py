"""Read run directories and draw what a researcher looks at: curves, score tables, bars.

Used by the demo's report.md and by notebooks/orca_analysis.ipynb. A run directory holds
one directory per stage (`stage1/`, `stage2/`, ...), each with the trainer's
`metrics.jsonl` and, when the stage was evaluated, `eval/results.json` and
`eval/predictions.jsonl`. The demo's output directory holds one run per condition and
seed, `<condition>/seed<k>/` (`discover_runs` finds them; `seed_stats` averages a
condition's runs over seeds). Paths may be local or gs:// (through orca_jax.tools.gcs).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Sequence
from typing import Any

from orca_jax.tools import gcs

CURVES = (("loss", "loss"), ("learning_rate", "learning rate"), ("tokens_per_s", "tokens/s"), ("mfu", "MFU"))


@dataclasses.dataclass
class Stage:
    """One stage of a run: its metrics records and, if evaluated, its eval results."""

    name: str
    directory: str
    metrics: list[dict[str, Any]]
    results: dict[str, Any] | None
    predictions: list[dict[str, Any]]


@dataclasses.dataclass
class Run:
    name: str
    directory: str
    stages: list[Stage]


def _read_jsonl(path: str) -> list[dict[str, Any]]:
    if not gcs.exists(path):
        return []
    return [json.loads(line) for line in gcs.read_text(path).splitlines() if line.strip()]


def _read_json(path: str) -> dict[str, Any] | None:
    return json.loads(gcs.read_text(path)) if gcs.exists(path) else None


def load_stage(directory: str, name: str | None = None) -> Stage:
    eval_dir = gcs.join(directory, "eval")
    return Stage(
        name=name or os.path.basename(directory.rstrip("/")),
        directory=directory,
        metrics=_read_jsonl(gcs.join(directory, "metrics.jsonl")),
        results=_read_json(gcs.join(eval_dir, "results.json")),
        predictions=_read_jsonl(gcs.join(eval_dir, "predictions.jsonl")),
    )


def load_run(directory: str, name: str | None = None) -> Run:
    """A run dir with stage*/ subdirectories, or a single stage dir (its own metrics.jsonl)."""
    directory = directory.rstrip("/")
    name = name or os.path.basename(directory)
    if gcs.exists(gcs.join(directory, "metrics.jsonl")):
        return Run(name, directory, [load_stage(directory, name)])
    children = sorted(c.rstrip("/") for c in gcs.listdir(directory))
    stages = [load_stage(gcs.join(directory, c), c) for c in children if _is_stage_dir(gcs.join(directory, c))]
    if not stages:
        raise FileNotFoundError(f"{directory}: no stage directories with metrics.jsonl or eval/results.json")
    return Run(name, directory, stages)


def _is_stage_dir(directory: str) -> bool:
    return gcs.exists(gcs.join(directory, "metrics.jsonl")) or gcs.exists(gcs.join(directory, "eval", "results.json"))


def _is_run_dir(directory: str) -> bool:
    """A stage directory, or a directory with stage directories in it (what load_run reads)."""
    return _is_stage_dir(directory) or any(
        _is_stage_dir(gcs.join(directory, c.rstrip("/"))) for c in gcs.listdir(directory)
    )


def discover_runs(directory: str) -> list[tuple[str, str]]:
    """(name, path) of the runs under `directory`: itself if it is a run, else `<a>/<b>/` runs
    two levels down (the demo's `<condition>/seed<k>`) or one level down, sorted by name."""
    directory = directory.rstrip("/")
    if _is_run_dir(directory):
        return [(os.path.basename(directory), directory)]
    found = []
    for a in sorted(c.rstrip("/") for c in gcs.listdir(directory)):
        path = gcs.join(directory, a)
        if not gcs.isdir(path):
            continue
        if _is_run_dir(path):
            found.append((a, path))
            continue
        for b in sorted(c.rstrip("/") for c in gcs.listdir(path)):
            sub = gcs.join(path, b)
            if gcs.isdir(sub) and _is_run_dir(sub):
                found.append((f"{a}/{b}", sub))
    return found


def load_runs(directories: Iterable[str]) -> list[Run]:
    """Every run in or under `directories` (see discover_runs), named e.g. 'progressive/seed0'."""
    return [load_run(path, name) for d in directories for name, path in discover_runs(d)]


@dataclasses.dataclass(frozen=True)
class SeedStat:
    """One score over seeds: mean and sample standard deviation (0 for one seed), in %."""

    mean: float
    sd: float
    values: tuple[float, ...]

    def __str__(self) -> str:
        return f"{self.mean:.1f} ± {self.sd:.1f}"


def seed_stats(runs: Sequence[Run], benchmark: str, stage: str | None = None) -> dict[str, dict[str, SeedStat]]:
    """{condition: {task or 'avg:all': SeedStat}} over the seeds of each condition.

    A run named '<condition>/seed<k>' belongs to <condition> (else its whole name is the
    condition); its score is that of `stage` (default: its last evaluated stage).
    """
    import statistics

    values: dict[str, dict[str, list[float]]] = {}
    for run in runs:
        evaluated = [s for s in run.stages if s.results and (stage is None or s.name == stage)]
        if not evaluated:
            continue
        condition = run.name.split("/")[0]
        for task, score in stage_scores(evaluated[-1]).get(benchmark, {}).items():
            if score is not None:
                values.setdefault(condition, {}).setdefault(task, []).append(score)
    return {
        c: {
            t: SeedStat(statistics.fmean(v), statistics.stdev(v) if len(v) > 1 else 0.0, tuple(v))
            for t, v in tasks.items()
        }
        for c, tasks in values.items()
    }


def seed_table(stats: dict[str, dict[str, SeedStat]]) -> str:
    """Markdown: one row per condition, one column per task and average: 'mean ± sd' (%)."""
    if not stats:
        return "_no evaluated runs_\n"
    columns = sorted({t for row in stats.values() for t in row}, key=lambda c: (not c.startswith("avg:"), c))
    n = {c: max(len(s.values) for s in row.values()) for c, row in stats.items()}
    lines = ["| condition (seeds) | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for condition, row in stats.items():
        lines.append(
            f"| {condition} ({n[condition]}) | " + " | ".join(str(row[c]) if c in row else "—" for c in columns) + " |"
        )
    return "\n".join(lines) + "\n"


def _pyplot():
    """matplotlib.pyplot on the Agg backend unless one is already chosen (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _finish(fig, path: str | None):
    """Lay out `fig` and save it to `path` (if given); returns it."""
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=110)
    return fig


def _grouped_bars(
    tasks: list[str],
    bars: list[tuple[str, list[float], list[float] | None]],
    ylabel: str,
    title: str,
    per_task_inch: float,
    height: float,
):
    """One bar group per task, one bar per (label, heights, error bars or None)."""
    fig, ax = _pyplot().subplots(figsize=(max(6.0, per_task_inch * len(tasks) + 2), height))
    width = 0.8 / max(1, len(bars))
    for i, (label, heights, errors) in enumerate(bars):
        ax.bar(
            [t + i * width for t in range(len(tasks))],
            heights,
            width,
            yerr=errors,
            capsize=2 if errors else 0,
            label=label,
        )
    ax.set_xticks([t + 0.4 - width / 2 for t in range(len(tasks))], tasks, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if bars:
        ax.legend(fontsize=7)
    return fig, ax


def plot_seed_bars(stats: dict[str, dict[str, SeedStat]], title: str, path: str | None = None):
    """Per-task mean accuracy over seeds, one bar per condition, error bars of one sd."""
    tasks = sorted({t for row in stats.values() for t in row}, key=lambda c: (not c.startswith("avg:"), c))
    bars = [
        (condition, [row[t].mean if t in row else 0.0 for t in tasks], [row[t].sd if t in row else 0.0 for t in tasks])
        for condition, row in stats.items()
    ]
    fig, ax = _grouped_bars(tasks, bars, "accuracy (%), mean ± sd over seeds", title, 1.0, 3.8)
    ax.set_ylim(0, 105)
    return _finish(fig, path)


def stage_scores(stage: Stage) -> dict[str, dict[str, float | None]]:
    """{benchmark: {task or 'avg:<group>': accuracy in %}} of one evaluated stage."""
    out: dict[str, dict[str, float | None]] = {}
    for bench, body in (stage.results or {}).get("benchmarks", {}).items():
        row: dict[str, float | None] = {}
        for group, agg in (body.get("aggregates") or {}).items():
            row[f"avg:{group}"] = _pct((agg or {}).get("accuracy"))
        for task, summary in body.get("tasks", {}).items():
            row[task] = _pct(summary.get("accuracy"))
        out[bench] = row
    return out


def _pct(x: float | None) -> float | None:
    return None if x is None else 100.0 * x


def score_table(runs: Sequence[Run], benchmark: str | None = None) -> str:
    """Markdown: one row per evaluated (run, stage), one column per task and average (%)."""
    rows = [(f"{r.name}/{s.name}", stage_scores(s)) for r in runs for s in r.stages if s.results]
    if not rows:
        return "_no evaluated stages_\n"
    benches = [benchmark] if benchmark else sorted({b for _, sc in rows for b in sc})
    lines = []
    for bench in benches:
        columns = sorted({c for _, sc in rows for c in sc.get(bench, {})}, key=lambda c: (not c.startswith("avg:"), c))
        lines += [f"**{bench}**", "", "| run/stage | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
        for label, sc in rows:
            cells = [_fmt(sc.get(bench, {}).get(c)) for c in columns]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.1f}"


def paper_comparison(stage: Stage) -> str:
    """The evaluation's own Markdown table: this stage beside the paper's reported models."""
    from orca_jax.evaluation import report

    return report.markdown(stage.results) if stage.results else "_stage not evaluated_\n"


def plot_training_curves(runs: Sequence[Run], keys: Iterable[tuple[str, str]] = CURVES, path: str | None = None):
    """One panel per metric; one line per (run, stage), steps offset so stages follow each other."""
    keys = list(keys)
    fig, axes = _pyplot().subplots(1, len(keys), figsize=(4.2 * len(keys), 3.4), squeeze=False)
    for run in runs:
        offset = 0
        for stage in run.stages:
            records = [m for m in stage.metrics if "loss" in m]
            steps = [offset + m["step"] for m in records]
            for ax, (key, label) in zip(axes[0], keys):
                values = [m.get(key) for m in records]
                if any(v is not None for v in values):
                    ax.plot(
                        steps,
                        [float("nan") if v is None else v for v in values],
                        label=f"{run.name}/{stage.name}" if len(runs) > 1 else stage.name,
                    )
                ax.set_title(label)
                ax.set_xlabel("step (stages in sequence)")
            offset = steps[-1] if steps else offset
    for ax in axes[0]:
        if ax.lines:
            ax.legend(fontsize=7)
    return _finish(fig, path)


def plot_task_bars(runs: Sequence[Run], benchmark: str, path: str | None = None):
    """Per-task accuracy bars, one bar group per task, one bar per evaluated (run, stage)."""
    series = [
        (f"{r.name}/{s.name}" if len(runs) > 1 else s.name, stage_scores(s).get(benchmark, {}))
        for r in runs
        for s in r.stages
        if s.results
    ]
    tasks = sorted({t for _, sc in series for t in sc if not t.startswith("avg:")})
    bars = [(label, [sc.get(t) or 0.0 for t in tasks], None) for label, sc in series]
    fig, _ = _grouped_bars(tasks, bars, "accuracy (%)", f"{benchmark}: per-task accuracy", 0.9, 3.6)
    return _finish(fig, path)


def example_predictions(stage: Stage, per_task: int = 2, max_chars: int = 300) -> list[dict[str, Any]]:
    """A few predictions per task (raw output shortened), right and wrong ones first."""
    by_task: dict[str, list[dict[str, Any]]] = {}
    for row in stage.predictions:
        by_task.setdefault(row.get("task", "?"), []).append(row)
    picked = []
    for task, rows in sorted(by_task.items()):
        rows = sorted(rows, key=lambda r: not r.get("correct"))
        for row in rows[:1] + [r for r in rows if not r.get("correct")][: per_task - 1]:
            picked.append(
                {
                    "task": task,
                    "target": row.get("target"),
                    "extracted": row.get("extracted"),
                    "correct": row.get("correct"),
                    "output": str(row.get("raw_output", ""))[:max_chars],
                }
            )
    return picked
