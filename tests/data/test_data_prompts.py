"""Chat templates: exact layouts, the empty system message, gin selection, no TensorFlow import."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import gin
import pytest

from orca_jax.data import prompts

from orca_data_testlib import ROOT


def _run_python(code: str) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter that imports the repository and the data test helpers."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.path.join(ROOT, "tests", "data")])}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)


def test_chatml_layout():
    out = prompts.render_prompt("Be brief.", "What is 2 + 2?")
    assert out == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n<|im_start|>assistant\n"
    )


def test_instruct_layout():
    out = prompts.render_prompt("Be brief.", "What is 2 + 2?", template="instruct")
    assert out == "### System:\nBe brief.\n\n### User:\nWhat is 2 + 2?\n\n### Assistant:\n"


@pytest.mark.parametrize("system", ["", "   ", "\n"])
def test_empty_system_message_omits_the_block(system):
    assert prompts.render_prompt(system, "Hi") == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    assert prompts.render_prompt(system, "Hi", template="instruct") == "### User:\nHi\n\n### Assistant:\n"


def test_empty_system_message_can_keep_an_empty_block():
    out = prompts.render_prompt("", "Hi", omit_empty_system=False)
    assert out == "<|im_start|>system\n<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_target_is_the_response_verbatim():
    prompt, target = prompts.render_example("S", "U", "  The answer.\n")
    assert target == "  The answer.\n"
    assert prompt.endswith("<|im_start|>assistant\n")


def test_template_selected_by_gin():
    try:
        gin.parse_config("render_prompt.template = 'instruct'")
        assert prompts.render_prompt("S", "U").startswith("### System:\nS")
        assert prompts.prompt_settings() == ("instruct", True)
    finally:
        gin.clear_config()
    assert prompts.render_prompt("S", "U").startswith("<|im_start|>system")
    assert prompts.prompt_settings() == ("chatml", True)


def test_unknown_template_is_an_error():
    with pytest.raises(ValueError, match="unknown chat template 'nope'"):
        prompts.render_prompt("S", "U", template="nope")


def test_data_modules_do_not_import_tensorflow(tmp_path):
    """prompts/tokenizer (used by evaluation) and the pipeline (used by the trainer) stay TF-free."""
    code = textwrap.dedent(
        f"""
        import sys
        from orca_jax.data import prompts, tokenizer, pipeline, packing, registry
        from orca_jax.demo import files as demo_files
        from orca_data_testlib import make_rows, register_rows_task
        name = register_rows_task({str(tmp_path)!r}, {{"a.parquet": make_rows(40)}})
        it = pipeline.make_batch_iterator(name, 128, 2, process_index=0, process_count=1)
        batch = next(it)
        assert batch["decoder_loss_weights"].sum() > 0
        bad = [m for m in ("tensorflow", "seqio") if m in sys.modules]
        assert not bad, bad
        print("ok")
        """
    )
    result = _run_python(code)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ok" in result.stdout


def test_tasks_register_without_seqio():
    """On hosts without TensorFlow/SeqIO, `tasks` still fills the pipeline's registry and demo tasks run."""
    code = textwrap.dedent(
        """
        import sys
        sys.modules["seqio"] = None  # Importing seqio now fails, as where it is not installed.
        from orca_jax.data import pipeline, registry
        try:  # Without `import tasks` (the gin files' job) the Orca names are unknown.
            pipeline.make_batch_iterator("orca_demo_answer_only", 128, 2, process_index=0, process_count=1)
            raise AssertionError("no error")
        except ValueError as e:
            assert "import tasks" in str(e), e
        import tasks
        it = pipeline.make_batch_iterator("orca_demo_answer_only", 128, 2, process_index=0, process_count=1)
        assert next(it)["decoder_loss_weights"].sum() > 0
        assert "tasks.seqio_face" not in sys.modules
        assert "orca_stage2_flan1m_gpt4" in registry.mixture_names()
        assert "orca_demo_stage2_expert" in registry.task_names()
        assert "tensorflow" not in sys.modules
        print("ok")
        """
    )
    result = _run_python(code)
    assert result.returncode == 0, result.stderr[-3000:]
