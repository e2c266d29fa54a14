"""The main job end to end at toy size, and the analysis notebook executed on its output."""

import json
import os
import pathlib

import pytest

from orca_jax import demo

REPO = pathlib.Path(__file__).resolve().parents[1]
TOY = [
    "--gin.model_config.preset='tiny'",
    "--gin.STAGE1_TRAIN_STEPS=4",
    "--gin.STAGE2_TRAIN_STEPS=4",
    "--gin.train_stage.log_every_steps=2",
    "--gin.CheckpointConfig.save_every_steps=2",
    "--gin.orca_jax.evaluation.runner.evaluate.max_examples_per_task=2",
    "--gin.orca_jax.evaluation.runner.evaluate.max_new_tokens=8",
]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    demo.main([f"--output_dir={out}", "--ablation", *TOY])
    return out


def test_demo_writes_run_directory(demo_dir, capsys):
    for run in (demo.EXPLAINED, demo.ANSWER_ONLY):
        for stage in ("stage1", "stage2"):
            d = demo_dir / run / stage
            for name in ("DONE", "metrics.jsonl", "operative_config.gin", "eval/results.json",
                         "eval/predictions.jsonl", "eval/results.md"):
                assert (d / name).exists(), d / name
            assert list((d / "tensorboard").iterdir()) and list((d / "checkpoints").iterdir())
            results = json.loads((d / "eval" / "results.json").read_text())
            assert results["benchmarks"]["demo_bbh"]["aggregates"]["all"]["accuracy"] is not None
    report = (demo_dir / "report.md").read_text()
    assert "explanation_tuning/stage1" in report and "answer_only_tuning/stage2" in report
    assert (demo_dir / "curves.png").stat().st_size > 1000
    # stage two started from stage one's final step with a fresh schedule: its steps restart at 1.
    first = json.loads((demo_dir / demo.EXPLAINED / "stage2" / "metrics.jsonl").read_text().splitlines()[0])
    assert first["step"] == 2


def test_demo_rerun_skips_finished_stages(demo_dir):
    before = (demo_dir / demo.EXPLAINED / "stage1" / "metrics.jsonl").read_text()
    demo.main([f"--output_dir={demo_dir}", *TOY])
    assert (demo_dir / demo.EXPLAINED / "stage1" / "metrics.jsonl").read_text() == before


def test_notebook_executes_on_demo_run(demo_dir, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    from nbconvert.preprocessors import ExecutePreprocessor

    figures = tmp_path / "figures"
    monkeypatch.setenv("ORCA_RUN_DIRS", f"{demo_dir / demo.EXPLAINED},{demo_dir / demo.ANSWER_ONLY}")
    monkeypatch.setenv("ORCA_ANALYSIS_OUT", str(figures))
    nb = nbformat.read(REPO / "notebooks" / "orca_analysis.ipynb", as_version=4)
    ExecutePreprocessor(timeout=300, kernel_name="python3").preprocess(nb, {"metadata": {"path": str(tmp_path)}})
    assert (figures / "curves.png").exists() and (figures / "tasks_demo_bbh.png").exists()
    outputs = "".join(str(o.get("data", o.get("text", ""))) for c in nb.cells if c.cell_type == "code"
                      for o in c.get("outputs", []))
    assert "explanation_tuning/stage2" in outputs and "Orca-13B" in outputs
