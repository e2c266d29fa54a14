"""The main job end to end at toy size: every condition, the layout, reruns, bitwise reproducibility,
and the analysis notebook executed on its output."""

import json
import pathlib

import jax
import numpy as np
import pytest

from orca_jax import analysis, demo
from orca_jax.demo import claims, conditions
from orca_jax.training.checkpoints import load_params

REPO = pathlib.Path(__file__).resolve().parents[1]
TOY = [
    "--gin.model_config.preset='tiny'",
    "--gin.STAGE1_TRAIN_STEPS=3",
    "--gin.STAGE2_TRAIN_STEPS=3",
    "--gin.StageConfig.log_every_steps=1",
    "--gin.CheckpointConfig.save_every_steps=2",
    "--gin.EvalConfig.max_examples_per_task=2",
    "--gin.EvalConfig.max_new_tokens=6",
]
STAGES = {
    conditions.PROGRESSIVE: ("stage1", "stage2"),
    conditions.EXPERT_ONLY: ("stage2",),
    conditions.ANSWER_ONLY: ("stage2",),
}


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    demo.main([f"--output_dir={out}", "--conditions=all", *TOY])
    return out


@pytest.mark.slow  # the module's demo run: every condition trained and evaluated
def test_every_condition_writes_its_run_directory(demo_dir, capsys):
    for condition, stages in STAGES.items():
        run = demo_dir / condition / "seed0"
        assert sorted(p.name for p in run.iterdir() if p.name.startswith("stage")) == list(stages)
        for stage in stages:
            d = run / stage
            for name in (
                "DONE",
                "metrics.jsonl",
                "operative_config.gin",
                "eval/results.json",
                "eval/predictions.jsonl",
                "eval/results.md",
            ):
                assert (d / name).exists(), d / name
            assert list((d / "tensorboard").iterdir()) and list((d / "checkpoints").iterdir())
            results = json.loads((d / "eval" / "results.json").read_text())
            for bench in (claims.IN_DIST, claims.OOD):
                assert results["benchmarks"][bench]["aggregates"]["all"]["accuracy"] is not None
        assert json.loads((run / "wall_seconds.json").read_text())["seconds"] > 0
    # Conditions differ where they should: stage two's data, and stage one only for progressive.
    operative = {c: (demo_dir / c / "seed0" / "stage2" / "operative_config.gin").read_text() for c in STAGES}
    assert "orca_demo_stage2_expert" in operative[conditions.PROGRESSIVE]
    assert "orca_demo_stage2_expert" in operative[conditions.EXPERT_ONLY]
    assert "orca_demo_answer_only" in operative[conditions.ANSWER_ONLY]
    report = (demo_dir / "report.md").read_text()
    assert "Claim (a)" in report and "Claim (b)" in report and "progressive (1)" in report
    assert (demo_dir / "demo_bbh_seeds.png").stat().st_size > 1000
    # Progressive's stage two starts from stage one's final step with a fresh schedule.
    first = json.loads((demo_dir / "progressive" / "seed0" / "stage2" / "metrics.jsonl").read_text().splitlines()[0])
    assert first["step"] == 1


@pytest.mark.slow  # the module's demo run: every condition trained and evaluated
def test_same_initialisation_across_conditions(demo_dir):
    """The stage that starts from random weights (progressive's stage one, the others' only stage)
    is seeded by the one SEED of the run, so all conditions of a seed share their initial weights."""
    for condition, stages in STAGES.items():
        config = (demo_dir / condition / "seed0" / stages[0] / "operative_config.gin").read_text()
        assert "StageConfig.seed = %SEED" in config and "\nSEED = 0\n" in config, condition


@pytest.mark.slow  # the module's demo run: every condition trained and evaluated
def test_rerun_skips_finished_stages(demo_dir):
    before = (demo_dir / "progressive" / "seed0" / "stage1" / "metrics.jsonl").read_text()
    demo.main([f"--output_dir={demo_dir}", "--conditions=progressive", *TOY])
    assert (demo_dir / "progressive" / "seed0" / "stage1" / "metrics.jsonl").read_text() == before


@pytest.mark.slow  # the module's demo run: every condition trained and evaluated
def test_a_second_run_is_bitwise_identical(demo_dir, tmp_path):
    """Same seed, same machine: the same tables, predictions, losses and final parameters."""
    demo.main([f"--output_dir={tmp_path}", "--conditions=progressive", *TOY])
    for stage in ("stage1", "stage2"):
        a, b = demo_dir / "progressive" / "seed0" / stage, tmp_path / "progressive" / "seed0" / stage
        ra, rb = (json.loads((d / "eval" / "results.json").read_text())["benchmarks"] for d in (a, b))
        assert ra == {k: {**v, "directory": v["directory"]} for k, v in rb.items()}
        pa, pb = (
            [
                (r["raw_output"], r.get("loglik"))
                for r in map(json.loads, (d / "eval" / "predictions.jsonl").read_text().splitlines())
            ]
            for d in (a, b)
        )
        assert pa == pb
        la, lb = (
            [(m["step"], m.get("loss")) for m in map(json.loads, (d / "metrics.jsonl").read_text().splitlines())]
            for d in (a, b)
        )
        assert la == lb
        wa, wb = (jax.tree.leaves(load_params(str(d))) for d in (a, b))
        assert len(wa) == len(wb) and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(wa, wb))


def test_seed_statistics_and_claims_over_seeds(tmp_path):
    """mean ± sd over seeds and the paired verdicts, on hand-written results (no training)."""
    scores = {
        ("progressive", 0): 60.0,
        ("progressive", 1): 70.0,
        ("answer_only", 0): 30.0,
        ("answer_only", 1): 40.0,
        ("expert_only", 0): 65.0,
        ("expert_only", 1): 55.0,
    }
    for (condition, seed), score in scores.items():
        d = tmp_path / condition / f"seed{seed}" / "stage2" / "eval"
        d.mkdir(parents=True)
        bench = {"tasks": {"t": {"accuracy": score / 100}}, "aggregates": {"all": {"accuracy": score / 100}}}
        (d / "results.json").write_text(json.dumps({"benchmarks": {claims.IN_DIST: bench, claims.OOD: bench}}))
    runs = analysis.load_runs([str(tmp_path)])
    assert [r.name for r in runs] == [
        "answer_only/seed0",
        "answer_only/seed1",
        "expert_only/seed0",
        "expert_only/seed1",
        "progressive/seed0",
        "progressive/seed1",
    ]
    stats = analysis.seed_stats(runs, claims.IN_DIST)
    assert stats["progressive"]["avg:all"].mean == pytest.approx(65.0)
    assert stats["progressive"]["avg:all"].sd == pytest.approx(7.0710678)
    a = claims.compare(runs, "progressive", "answer_only", claims.IN_DIST)
    assert a.differences == {"seed0": 30.0, "seed1": 30.0} and a.wins == 2
    b = claims.compare(runs, "progressive", "expert_only", claims.IN_DIST)
    assert b.mean == pytest.approx(5.0) and b.wins == 1
    text = " ".join(claims.verdicts(runs))
    assert "Claim (a), explanation tuning vs answer-only (Orca vs Vicuna): replicated" in text
    assert "Claim (b), progressive (assistant → expert) vs expert data alone: replicated" in text
    scores[("expert_only", 1)] = 90.0
    (tmp_path / "expert_only" / "seed1" / "stage2" / "eval" / "results.json").write_text(
        json.dumps(
            {"benchmarks": {b: {"tasks": {}, "aggregates": {"all": {"accuracy": 0.9}}} for b in (claims.IN_DIST,)}}
        )
    )
    assert "expert data alone: not replicated" in " ".join(claims.verdicts(analysis.load_runs([str(tmp_path)])))


@pytest.mark.slow  # the module's demo run: every condition trained and evaluated
def test_notebook_executes_on_demo_run(demo_dir, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    from nbconvert.preprocessors import ExecutePreprocessor

    figures = tmp_path / "figures"
    monkeypatch.setenv("ORCA_RUN_DIRS", str(demo_dir))
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the kernel imports this checkout's orca_jax
    monkeypatch.setenv("ORCA_ANALYSIS_OUT", str(figures))
    nb = nbformat.read(REPO / "notebooks" / "orca_analysis.ipynb", as_version=4)
    ExecutePreprocessor(timeout=300, kernel_name="python3").preprocess(nb, {"metadata": {"path": str(tmp_path)}})
    assert (figures / "curves.png").exists() and (figures / "tasks_demo_bbh.png").exists()
    assert (figures / "seeds_demo_bbh.png").exists()
    outputs = "".join(
        str(o.get("data", o.get("text", ""))) for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "progressive/seed0/stage2" in outputs and "answer_only (1)" in outputs and "Orca-13B" in outputs
