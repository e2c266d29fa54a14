"""Writing results: results.json, predictions.jsonl and results.md (beside the paper's table), and
TensorBoard scalars at the checkpoint's step when the checkpoint belongs to a training run."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

from orca_jax.evaluation import paper_scores as ps

RESULTS_JSON = "results.json"
PREDICTIONS_JSONL = "predictions.jsonl"
RESULTS_MD = "results.md"


def _write(output_dir: str, name: str, text: str) -> str:
    """Write `text` to `output_dir/name` atomically (through a .tmp file); returns the path."""
    path = os.path.join(output_dir, name)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
    return path


def write_json(output_dir: str, results: Mapping[str, Any]) -> str:
    return _write(output_dir, RESULTS_JSON, json.dumps(results, indent=2, ensure_ascii=False) + "\n")


def write_predictions(output_dir: str, rows: Iterable[Mapping[str, Any]]) -> str:
    return _write(output_dir, PREDICTIONS_JSONL, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def _paper_cells(row: Mapping[str, ps.PaperScore] | None) -> list[str]:
    if row is None:
        return ["—"] * len(ps.PAPER_MODELS)
    return [f"{row[m].value:.1f}" + ("" if row[m].verified else " †") for m in ps.PAPER_MODELS]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def markdown(results: Mapping[str, Any]) -> str:
    """The results table, this checkpoint's scores beside the paper's (percent)."""
    settings = results["settings"]
    benchmarks = results["benchmarks"]
    ours = "This checkpoint"
    has_loglik = settings["metric"] in ("loglik", "both")
    header = ["Benchmark / task", ours] + (["(log-lik.)"] if has_loglik else []) + list(ps.PAPER_MODELS)

    def cells(summary: Mapping | None) -> list[str]:
        summary = summary or {}
        out = [_pct(summary.get("accuracy"))]
        if has_loglik:
            out.append(_pct(summary.get("loglik_accuracy")))
        return out

    lines = [f"# Zero-shot evaluation: `{results['checkpoint']}`", ""]
    lines += [
        f"- template: `{settings['template']}`, system message id {settings['system_message_id']}, "
        f"metric: {settings['metric']}, decoding: {settings['decoding']}",
        f"- max new tokens: {settings['max_new_tokens']}; examples per task: "
        f"{settings['max_examples_per_task'] or 'all'}; truncated prompts: {results['num_truncated_prompts']}",
    ]
    if settings["max_examples_per_task"]:
        lines.append(
            "- **subset run**: scores are over the first examples of each task only, not comparable with the paper"
        )
    lines += [
        "",
        "Accuracy in percent. Paper columns: Orca (Mukherjee et al. 2023) as compiled in "
        "`docs/orca_facts.md` §5a/§5b; † = recalled, not verified against the paper's text.",
        "",
    ]

    rows = []
    agieval = benchmarks.get("agieval")
    bbh = benchmarks.get("bbh")
    if agieval is not None:
        rows.append(
            ["AGIEval English MC, average of 8"]
            + cells(agieval["aggregates"].get("english_mc"))
            + _paper_cells(ps.AGIEVAL_AVERAGE)
        )
    if bbh is not None:
        rows.append(
            ["BBH, 23 tasks (paper set)"] + cells(bbh["aggregates"].get("paper_23")) + _paper_cells(ps.BBH_AVERAGE)
        )
        rows.append(["BBH, all 27 tasks"] + cells(bbh["aggregates"].get("all_27")) + _paper_cells(None))
    lines += ["## Aggregates", ""] + _table(header, rows) + [""]

    if agieval is not None:
        rows = []
        for task, (name, paper) in ps.AGIEVAL_TASKS.items():
            if task in agieval["tasks"]:
                rows.append([name] + cells(agieval["tasks"][task]) + _paper_cells(paper))
        for task, summary in agieval["tasks"].items():
            if task not in ps.AGIEVAL_TASKS:
                rows.append([f"{task} (not in the paper's table)"] + cells(summary) + _paper_cells(None))
        lines += ["## AGIEval", ""] + _table(header, rows) + [""]
    if bbh is not None:
        rows = [[task] + cells(summary) + _paper_cells(None) for task, summary in bbh["tasks"].items()]
        lines += ["## BBH (per-task paper scores not available)", ""] + _table(header, rows) + [""]
    for name, bench in benchmarks.items():
        if name in ("agieval", "bbh"):
            continue
        rows = [[task] + cells(summary) + _paper_cells(None) for task, summary in bench["tasks"].items()]
        rows.append(["average"] + cells(bench["aggregates"].get("all")) + _paper_cells(None))
        lines += [f"## {name} (BBH-format directory)", ""] + _table(header, rows) + [""]
    return "\n".join(lines)


def write_markdown(output_dir: str, results: Mapping[str, Any]) -> str:
    return _write(output_dir, RESULTS_MD, markdown(results))


# -- TensorBoard --------------------------------------------------------------------------------

TENSORBOARD_DIR = "tensorboard"  # <run_dir>/tensorboard, where training.metrics writes too


def run_checkpoint_step(checkpoint: str) -> tuple[str, int] | None:
    """(run dir, step) when `checkpoint` is a stage run dir (its latest complete step) or one of
    its step dirs (`<run>/checkpoints/<step>`); None for a converted dir or a random init."""
    if checkpoint.startswith("random"):
        return None
    from etils import epath

    from orca_jax.training.checkpoints import CHECKPOINTS_DIR, find_params_dir

    try:
        step_dir = find_params_dir(checkpoint).parent
    except FileNotFoundError:
        return None
    if step_dir.parent.name != CHECKPOINTS_DIR or not step_dir.name.isdigit():
        return None
    return str(epath.Path(step_dir).parent.parent), int(step_dir.name)


def scalars(results: Mapping[str, Any]) -> dict[str, float]:
    """TensorBoard scalars of one evaluation: `eval/<benchmark>/<task>/accuracy` per task and
    `eval/<benchmark>/average_<group>/accuracy` per aggregate (plus `.../loglik_accuracy`)."""
    out = {}
    for name, bench in results["benchmarks"].items():
        rows = [(task, summary) for task, summary in bench["tasks"].items()]
        rows += [(f"average_{group}", agg) for group, agg in bench["aggregates"].items() if agg]
        for key, summary in rows:
            for metric in ("accuracy", "loglik_accuracy"):
                if summary.get(metric) is not None:
                    out[f"eval/{name}/{key}/{metric}"] = float(summary[metric])
    return out


def write_tensorboard(results: Mapping[str, Any], run_dir: str, step: int) -> dict[str, float]:
    """Write `scalars(results)` at `step` into `<run_dir>/tensorboard`; returns what was written."""
    from tensorboardX import SummaryWriter

    values = scalars(results)
    writer = SummaryWriter(os.path.join(run_dir, TENSORBOARD_DIR))
    try:
        for tag, value in values.items():
            writer.add_scalar(tag, value, step)
    finally:
        writer.close()
    return values
