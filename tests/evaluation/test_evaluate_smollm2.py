"""`python -m orca_jax.evaluate` on a real student (SmolLM2-135M-Instruct) as a user runs it: a converted
checkpoint, its own tokenizer and chat template from the model card, metric=both; option
log-likelihoods checked against transformers (fp32)."""

import json

import pytest

from orca_jax import evaluate as cli
from orca_jax.data.tokenizer import load_tokenizer
from orca_jax.evaluation import loaders
from orca_jax.testing import hf_reference

pytestmark = pytest.mark.torch

# Both fp32; observed max |diff| ~3e-5 over 30 option scores of the real BBH.
ATOL = 1e-3


def test_evaluate_smollm2_matches_transformers(smollm2_converted_dir, smollm2_hf_dir, bbh_fixture_dir, tmp_path):
    out = tmp_path / "eval"
    rc = cli.main(
        [
            f"--checkpoint={smollm2_converted_dir}",
            f"--output_dir={out}",
            f"--bbh_dir={bbh_fixture_dir}",
            "--benchmarks",
            "bbh",
            "--tasks",
            "date_understanding",
            "navigate",
            "--max_examples_per_task=2",
            "--metric=both",
            "--max_new_tokens=6",
            "--dtype=float32",
            "--batch_size=4",
            "--gin.EvalConfig.mesh_shape=None",
        ]
    )
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    settings = results["settings"]
    assert settings["template"] == "chatml" and settings["tokenizer"]["bos_id"] is None
    assert settings["model_card"] == str(smollm2_converted_dir)
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(isinstance(r["raw_output"], str) and r["generated_tokens"] > 0 for r in rows)

    loaded = loaders.load_bbh_format_dir(bbh_fixture_dir, ["date_understanding", "navigate"])
    examples = [loaded[r["task"]][r["index"]] for r in rows]
    reference = hf_reference.reference_scores(str(smollm2_hf_dir), examples)
    tokenizer = load_tokenizer(str(smollm2_converted_dir))
    for row, ref in zip(rows, reference):
        assert tokenizer.encode(row["prompt"]) == ref["prompt_ids"] and row["prompt_tokens"] == len(ref["prompt_ids"])
    agreement = hf_reference.compare(rows, reference)
    assert agreement["options"] == 3 * 2 + 2 * 2  # date_understanding: 3 options; navigate: Yes/No
    assert agreement["max_abs_diff"] < ATOL, agreement
    assert agreement["same_choice"] == len(rows), agreement
