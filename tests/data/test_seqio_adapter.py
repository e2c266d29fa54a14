"""A T5X user's own SeqIO task trains: their module and gin file, `python -m orca_jax.train`, the Orca packer."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

seqio = pytest.importorskip("seqio")

from orca_jax.data import pipeline, seqio_adapter  # noqa: E402
from orca_jax.training.metrics import read_metrics  # noqa: E402

from orca_data_testlib import ROOT  # noqa: E402

pytestmark = pytest.mark.seqio

TASK = "user_arithmetic_task"
ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def number(n: int) -> str:
    """English words of 0 <= n < 200."""
    if n >= 100:
        return "one hundred" + ("" if n == 100 else " and " + number(n - 100))
    return ONES[n] if n < 20 else TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])


@pytest.fixture(scope="module")
def user_task(tmp_path_factory):
    """What a T5X user writes: a TSV file, their own SentencePiece model and a module registering the task."""
    import sentencepiece as spm

    root = tmp_path_factory.mktemp("user")
    lines = [
        f"what is {number(a)} plus {number(b)} ?\tthe sum is {number(a + b)} ."
        for a in range(0, 100, 9)
        for b in range(0, 100, 11)
    ]
    (root / "train.tsv").write_text("\n".join(lines) + "\n")
    spm.SentencePieceTrainer.train(  # T5 layout: pad 0, EOS 1, UNK 2, no BOS
        input=str(root / "train.tsv"),
        model_prefix=str(root / "user_spm"),
        vocab_size=100,
        model_type="bpe",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        minloglevel=2,
    )
    (root / "user_tasks.py").write_text(
        textwrap.dedent(f"""
        import seqio
        import tensorflow as tf

        VOCAB = seqio.SentencePieceVocabulary({str(root / "user_spm.model")!r})


        def split_line(dataset):
            def fn(line):
                fields = tf.strings.split(line, "\\t")
                return {{"inputs": fields[0], "targets": fields[1]}}
            return dataset.map(fn)


        seqio.TaskRegistry.add(
            {TASK!r},
            source=seqio.TextLineDataSource({{"train": {str(root / "train.tsv")!r}}}),
            preprocessors=[split_line, seqio.preprocessors.tokenize, seqio.preprocessors.append_eos_after_trim],
            output_features={{"inputs": seqio.Feature(VOCAB, add_eos=False),
                              "targets": seqio.Feature(VOCAB, add_eos=True)}},
        )
        """)
    )
    sys.path.insert(0, str(root))
    try:
        import user_tasks  # noqa: F401

        yield root
    finally:
        sys.path.remove(str(root))
        seqio.TaskRegistry.remove(TASK)


def test_loss_weights_cover_exactly_the_targets_tokens(user_task):
    task = seqio.get_mixture_or_task(TASK)
    raw = next(task.get_dataset(sequence_length=None, split="train", shuffle=False).as_numpy_iterator())
    example = seqio_adapter.to_example(raw, task.output_features, sequence_length=64, min_prompt_tokens=4)
    n_in, n_tg = len(raw["inputs"]), len(raw["targets"])
    assert raw["targets"][-1] == 1  # The task's EOS, from its own preprocessors.
    assert example.tokens.tolist() == raw["inputs"].tolist() + raw["targets"].tolist()
    assert (
        example.loss_weights().tolist() == [0] * (n_in - 1) + [1] * n_tg
    )  # Targets are tokens[n_in:] = targets[n_in - 1:].
    assert example.targets()[n_in - 1 :].tolist() == raw["targets"].tolist()

    it = pipeline.make_batch_iterator(
        TASK, 64, 4, process_index=0, process_count=1, num_epochs=1, shuffle=False, pack=False
    )
    batch = next(it)
    first = batch["decoder_segment_ids"][0] == 1
    assert (
        batch["decoder_target_tokens"][0][first & (batch["decoder_loss_weights"][0] == 1)].tolist()
        == raw["targets"].tolist()
    )
    assert sum(int(b["decoder_loss_weights"].sum()) for b in [batch, *it]) == it.stats()["loss_tokens"]
    assert it.stats()["examples/" + TASK] == 12 * 10 and it.tokenizer is None  # A T5-style model has no BOS piece.


def test_restore_continues_a_seqio_task(user_task):
    def make():
        return pipeline.make_batch_iterator(
            TASK, 64, 4, process_index=0, process_count=1, shuffle_window=16, pack_window=16
        )

    it = make()
    for _ in range(3):
        next(it)
    state = it.state_dict()
    want = [next(it) for _ in range(4)]
    other = make()
    other.load_state_dict(state)
    for a in want:
        b = next(other)
        assert all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_trainer_trains_on_a_user_seqio_task(user_task, tmp_path):
    gin_file = tmp_path / "user_run.gin"
    gin_file.write_text(
        textwrap.dedent(f"""
        import user_tasks
        include 'models/tiny.gin'
        include 'partitioning/fsdp.gin'
        include 'stages/stage1.gin'

        RunConfig.stages = ('stage1',)
        MIXTURE_OR_TASK_NAME = {TASK!r}
        STAGE1_MIXTURE_OR_TASK_NAME = %MIXTURE_OR_TASK_NAME
        STAGE1_TRAIN_STEPS = 8
        NUM_EPOCHS = None
        BATCH_SIZE = 8
        SEQUENCE_LENGTH = 64
        LEARNING_RATE = 3e-3
        PartitioningConfig.mesh_shape = (2, 2, 2)
        OptimizerConfig.warmup_steps = 2
        StageConfig.log_every_steps = 1
        CheckpointConfig.async_save = False
        """)
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(user_task), ROOT])}
    env.pop("PYTEST_CURRENT_TEST", None)
    result = subprocess.run(
        [sys.executable, "-m", "orca_jax.train", f"--gin_file={gin_file}", f"--gin.MODEL_DIR={tmp_path / 'run'}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    records = read_metrics(str(tmp_path / "run" / "stage1"))
    losses = [r["loss"] for r in records]
    assert [r["step"] for r in records] == list(range(1, 9))
    assert all(math.isfinite(x) for x in losses) and losses[-1] < losses[0], losses
    assert records[0]["data/examples/" + TASK] > 0
