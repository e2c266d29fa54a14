"""End to end on fixture files: evaluate() and the command line write the three result files."""

import json
import os

import pytest

from orca_jax import evaluate as cli
from orca_jax.data.tokenizer import Tokenizer, prefix_ids
from orca_jax.demo.files import DEMO_TOKENIZER_PATH
from orca_jax.evaluation import runner
from orca_jax.models import get_preset

# Unrolled layers compile faster on CPU; max_len 256 holds every fixture prompt + 8 tokens.
TINY = get_preset("tiny", max_len=256, scan_layers=False, remat_policy="none")


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer(DEMO_TOKENIZER_PATH)


def _read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


@pytest.mark.slow
def test_evaluate_end_to_end(tmp_path, bbh_fixture_dir, agieval_fixture_dir, tokenizer):
    out = str(tmp_path / "eval")
    results = runner.evaluate(
        "random:0",
        out,
        model_config=TINY,
        tokenizer=tokenizer,
        bbh_dir=bbh_fixture_dir,
        agieval_dir=agieval_fixture_dir,
        bbh_format_dirs={"heldout": bbh_fixture_dir},
        tasks=["bbh/date_understanding", "bbh/navigate", "heldout/object_counting", "lsat-ar", "math"],
        max_new_tokens=8,
        batch_size=4,
        metric="both",
        mesh_shape=None,
    )
    assert set(results["benchmarks"]) == {"bbh", "agieval", "heldout"}
    bbh = results["benchmarks"]["bbh"]
    assert list(bbh["tasks"]) == ["date_understanding", "navigate"]
    assert bbh["aggregates"]["paper_23"]["num_tasks"] == 2 and bbh["aggregates"]["all_27"]["num_examples"] == 6
    assert list(results["benchmarks"]["heldout"]["tasks"]) == ["object_counting"]
    agieval = results["benchmarks"]["agieval"]
    assert agieval["aggregates"]["english_mc"]["num_tasks"] == 1
    assert agieval["tasks"]["math"]["loglik_accuracy"] is None  # cloze: no closed answer set
    date = bbh["tasks"]["date_understanding"]
    assert date["answer_type"] == "multiple_choice" and 0 <= date["loglik_accuracy"] <= 1
    assert date["prompt"]["user_format"] == "{input}" and date["prompt"]["system_message_id"] == 1
    assert date["prompt"]["first_prompt"].startswith("<|im_start|>user\nToday is Christmas Eve")
    assert "Answer Choices: (A)Kyle goes first" in agieval["tasks"]["lsat-ar"]["prompt"]["first_prompt"]

    with open(os.path.join(out, "results.json")) as f:
        assert json.load(f)["benchmarks"]["bbh"]["tasks"]["navigate"]["num_examples"] == 2
    rows = _read_jsonl(os.path.join(out, "predictions.jsonl"))
    assert len(rows) == results["num_examples"] == 4 + 2 + 2 + 2 + 2
    for row in rows:
        assert {"prompt", "raw_output", "extracted", "target", "correct", "loglik"} <= set(row)
        assert row["generated_tokens"] <= 8
    md = open(os.path.join(out, "results.md")).read()
    assert "| Benchmark / task | This checkpoint | (log-lik.) | Orca-13B | ChatGPT | GPT-4 | Vicuna-13B |" in md
    assert "## heldout (BBH-format directory)" in md


def test_outputs_are_scored_from_the_generated_text(tmp_path, bbh_fixture_dir, tokenizer, monkeypatch):
    """Replace the decoder's output with the gold answer text: every example is correct."""
    from orca_jax.evaluation import decoding

    examples = {}

    def fake_generate(self, prompts, max_new_tokens, sampling=decoding.Sampling(), example_ids=None):
        outs = [tokenizer.encode(examples[tuple(p)]) for p in prompts]
        return decoding.Generation(outs, [True] * len(prompts), [0] * len(prompts))

    real_render = runner.zero_shot_prompts.render

    def render(example, template, system_message_id=1, omit_empty_system=None):
        text = real_render(example, template, system_message_id, omit_empty_system)
        examples[tuple(prefix_ids(tokenizer) + tokenizer.encode(text))] = example.target
        return text

    monkeypatch.setattr(decoding.Decoder, "generate", fake_generate)
    monkeypatch.setattr(runner.zero_shot_prompts, "render", render)
    results = runner.evaluate(
        "random",
        str(tmp_path),
        model_config=TINY,
        tokenizer=tokenizer,
        bbh_dir=bbh_fixture_dir,
        benchmarks=["bbh"],
        mesh_shape=None,
    )
    tasks = results["benchmarks"]["bbh"]["tasks"]
    assert len(tasks) == 9 and all(t["accuracy"] == 1.0 for t in tasks.values())
    assert results["benchmarks"]["bbh"]["aggregates"]["paper_23"]["accuracy"] == 1.0


def test_unknown_task_and_missing_tokenizer(tmp_path, bbh_fixture_dir, tokenizer):
    with pytest.raises(ValueError, match="not_a_task"):
        runner.evaluate(
            "random",
            str(tmp_path),
            model_config=TINY,
            tokenizer=tokenizer,
            bbh_dir=bbh_fixture_dir,
            benchmarks=["bbh"],
            tasks=["not_a_task"],
            mesh_shape=None,
        )
    with pytest.raises(ValueError, match="tokenizer_path"):
        runner.evaluate("random", str(tmp_path), model_config=TINY, bbh_dir=bbh_fixture_dir, mesh_shape=None)


def test_command_line_with_gin(tmp_path, bbh_fixture_dir, capsys):
    gin_file = tmp_path / "eval.gin"
    gin_file.write_text(
        "import orca_jax.evaluation.runner\n"
        "import orca_jax.models.presets\n"
        "model_config.preset = 'tiny'\n"
        "model_config.overrides = {'max_len': 256, 'scan_layers': False, 'remat_policy': 'none'}\n"
        "EvalConfig.tokenizer_path = '{demo_data_dir}/tokenizer.model'\n"
        "EvalConfig.max_new_tokens = 4\n"
        "EvalConfig.mesh_shape = None\n"
    )
    out = tmp_path / "cli"
    rc = cli.main(
        [
            f"--gin_file={gin_file}",
            "--checkpoint=random:1",
            f"--output_dir={out}",
            f"--bbh_format_dir=mine={bbh_fixture_dir}",
            "--benchmarks",
            "mine",
            "--tasks",
            "navigate",
            "--max_examples_per_task=1",
            "--gin.EvalConfig.batch_size=2",
        ]
    )
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["aggregates"]["mine"]["all"]["num_examples"] == 1
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["batch_size"] == 2 and results["settings"]["max_new_tokens"] == 4
    assert (out / "results.md").exists() and len(_read_jsonl(out / "predictions.jsonl")) == 1


def test_eval_config_rejects_bad_values_naming_the_field():
    with pytest.raises(ValueError, match="metric='bogus'"):
        runner.EvalConfig(metric="bogus")
    with pytest.raises(ValueError, match="system_message_id=17.*top_p=0"):
        runner.EvalConfig(system_message_id=17, top_p=0.0)
    with pytest.raises(TypeError, match="max_new_token"):
        runner.evaluate("random", "/tmp/unused", max_new_token=3)  # a misspelt field fails before loading
