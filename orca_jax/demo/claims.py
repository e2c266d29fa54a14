"""The paper's two claims, checked on the demo's runs, and the report.md that states the verdicts.

(a) Explanation tuning beats imitating answers (Orca vs Vicuna): `progressive` vs
    `answer_only` on the held-out average, in every seed.
(b) Progressive learning beats the strong teacher's data alone (Orca's FLAN-5M -> FLAN-1M
    vs FLAN-1M only, 41.7 vs 37.18 on AGIEval): `progressive` vs `expert_only`, mean over seeds.

Scores are those of each run's last stage on `demo_bbh` (in-distribution held-out) and,
reported beside them, `demo_bbh_ood` (longer chains, more digits than any training query).
"""

from __future__ import annotations

import dataclasses
import os
import statistics
from collections.abc import Sequence

from orca_jax import analysis
from orca_jax.demo.conditions import ANSWER_ONLY, EXPERT_ONLY, PROGRESSIVE

IN_DIST, OOD = "demo_bbh", "demo_bbh_ood"
AVERAGE = "avg:all"


def averages(runs: Sequence[analysis.Run], benchmark: str) -> dict[str, dict[str, float]]:
    """{condition: {seed name: last stage's average accuracy (%)}} for runs named '<condition>/<seed>'."""
    out: dict[str, dict[str, float]] = {}
    for run in runs:
        evaluated = [s for s in run.stages if s.results]
        score = analysis.stage_scores(evaluated[-1]).get(benchmark, {}).get(AVERAGE) if evaluated else None
        if score is not None:
            condition, _, seed = run.name.partition("/")
            out.setdefault(condition, {})[seed or "seed0"] = score
    return out


@dataclasses.dataclass(frozen=True)
class Comparison:
    """`better` minus `worse` on a benchmark's average, paired by seed."""

    better: str
    worse: str
    benchmark: str
    differences: dict[str, float]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.differences.values())

    @property
    def sd(self) -> float:
        return statistics.stdev(self.differences.values()) if len(self.differences) > 1 else 0.0

    @property
    def wins(self) -> int:
        return sum(d > 0 for d in self.differences.values())

    def describe(self) -> str:
        per_seed = ", ".join(f"{s}: {d:+.1f}" for s, d in sorted(self.differences.items()))
        return (
            f"{self.better} − {self.worse} on {self.benchmark}: {self.mean:+.1f} ± {self.sd:.1f} points "
            f"(mean ± sd over {len(self.differences)} seed(s); {per_seed}); "
            f"{self.better} ahead in {self.wins}/{len(self.differences)} seeds"
        )


def compare(runs: Sequence[analysis.Run], better: str, worse: str, benchmark: str) -> Comparison | None:
    """The paired comparison, or None if either condition has no evaluated runs."""
    avg = averages(runs, benchmark)
    if better not in avg or worse not in avg:
        return None
    seeds = sorted(set(avg[better]) & set(avg[worse]))
    return Comparison(better, worse, benchmark, {s: avg[better][s] - avg[worse][s] for s in seeds}) if seeds else None


def verdicts(runs: Sequence[analysis.Run]) -> list[str]:
    """Sentences: which claim replicated, by how much, and which did not."""
    lines = []
    a = compare(runs, PROGRESSIVE, ANSWER_ONLY, IN_DIST)
    if a:
        ok = a.wins == len(a.differences)
        lines.append(
            f"**Claim (a), explanation tuning vs answer-only (Orca vs Vicuna): "
            f"{'replicated' if ok else 'not replicated'}.** {a.describe()}."
        )
        if a_ood := compare(runs, PROGRESSIVE, ANSWER_ONLY, OOD):
            lines.append(f"Out of distribution: {a_ood.describe()}.")
        if pure := compare(runs, EXPERT_ONLY, ANSWER_ONLY, IN_DIST):
            lines.append(f"Same queries, same steps, traces vs bare answers: {pure.describe()}.")
    b = compare(runs, PROGRESSIVE, EXPERT_ONLY, IN_DIST)
    if b:
        ok = b.mean >= 0
        lines.append(
            f"**Claim (b), progressive (assistant → expert) vs expert data alone: "
            f"{'replicated' if ok else 'not replicated'}** (paper: +4.5 on AGIEval, 41.7 vs 37.18). "
            f"{b.describe()}. Like the paper's ablation, this changes two things at once: "
            "the assistant stage and 5x more queries (and here also more steps)."
        )
        if b_ood := compare(runs, PROGRESSIVE, EXPERT_ONLY, OOD):
            lines.append(f"Out of distribution: {b_ood.describe()}.")
    return lines


def write_report(output_dir: str, runs: Sequence[analysis.Run], wall_s: float, settings: str) -> str:
    """report.md: verdicts, mean ± sd tables (in-distribution and OOD), per-task plots, examples."""
    lines = [
        "# mini-Orca",
        "",
        settings,
        "",
        f"Wall time of this invocation: {wall_s / 60:.1f} min.",
        "",
        "## The paper's claims",
        "",
    ]
    lines += [f"- {v}" for v in verdicts(runs)] or ["_not enough conditions to compare_"]
    for bench, what in ((IN_DIST, "held-out, training sizes"), (OOD, "held-out, out of distribution")):
        stats = analysis.seed_stats(runs, bench)
        plot = f"{bench}_seeds.png"
        analysis.plot_seed_bars(
            stats, f"{bench} ({what}): last stage, mean ± sd over seeds", path=os.path.join(output_dir, plot)
        )
        lines += [
            "",
            f"## {bench}: {what} (accuracy %, last stage, mean ± sd over seeds)",
            "",
            analysis.seed_table(stats),
            f"![{bench}]({plot})",
        ]
    lines += [
        "",
        "## Every evaluated stage of every run",
        "",
        analysis.score_table(runs),
        "## Example predictions (seed 0, last stage)",
        "",
    ]
    for run in runs:
        if run.name.endswith("seed0") and run.stages and run.stages[-1].results:
            for row in analysis.example_predictions(run.stages[-1], per_task=1, max_chars=160):
                output = row["output"].replace("\n", " / ").replace("|", "¦")
                lines.append(
                    f"- {run.name} **{row['task']}** target `{row['target']}`, extracted "
                    f"`{row['extracted']}` ({'right' if row['correct'] else 'wrong'}): {output}"
                )
    lines += [
        "",
        "Per-run files: `<condition>/seed<k>/stage*/{metrics.jsonl, eval/results.json, "
        "eval/predictions.jsonl, tensorboard/, checkpoints/, operative_config.gin}`.",
        "",
    ]
    path = os.path.join(output_dir, "report.md")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path
