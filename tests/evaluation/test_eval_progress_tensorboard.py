"""Progress inside a task (one log line per decoding batch) and accuracies in TensorBoard."""

import glob
import logging
import struct

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest
from tensorboardX.proto import event_pb2

from orca_jax.data.tokenizer import Tokenizer
from orca_jax.demo.files import DEMO_TOKENIZER_PATH
from orca_jax.evaluation import report, runner
from orca_jax.models import Llama, get_preset

TINY = get_preset("tiny", max_len=256, scan_layers=False, remat_policy="none")


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer(DEMO_TOKENIZER_PATH)


@pytest.fixture(scope="module")
def params():
    model = Llama(TINY.replace(attention_impl="xla"))
    return nn.unbox(model.init(jax.random.PRNGKey(0), jnp.zeros((1, 1), jnp.int32)))["params"]


def read_scalars(logdir) -> dict[str, tuple[int, float]]:
    """{tag: (step, value)} from every TFRecord event file under `logdir`."""
    out = {}
    for path in sorted(glob.glob(f"{logdir}/events.out.tfevents.*")):
        data = open(path, "rb").read()
        pos = 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos : pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12 : pos + 12 + length])
            pos += 12 + length + 4
            for value in event.summary.value:
                out[value.tag] = (event.step, value.simple_value)
    return out


def _evaluate(checkpoint, out, bbh_fixture_dir, tokenizer, params, **kwargs):
    return runner.evaluate(
        checkpoint,
        str(out),
        model_config=TINY,
        tokenizer=tokenizer,
        params=params,
        bbh_dir=bbh_fixture_dir,
        benchmarks=["bbh"],
        max_new_tokens=4,
        mesh_shape=None,
        **kwargs,
    )


def test_progress_is_logged_per_decoding_batch(tmp_path, bbh_fixture_dir, tokenizer, params, caplog):
    with caplog.at_level(logging.INFO, logger=runner.log.name):
        _evaluate(
            "random",
            tmp_path,
            bbh_fixture_dir,
            tokenizer,
            params,
            tasks=["date_understanding", "navigate"],
            batch_size=3,
        )
    lines = [r.getMessage() for r in caplog.records if "examples/s" in r.getMessage()]
    assert [line.split(" examples")[0] for line in lines] == [
        "bbh/date_understanding: 3/4",
        "bbh/date_understanding: 4/4",
        "bbh/navigate: 2/2",
    ], lines
    assert "(75%)" in lines[0] and lines[1].endswith("~0 s left")


@pytest.mark.slow
def test_batched_progress_keeps_the_outputs(tmp_path, bbh_fixture_dir, tokenizer, params):
    """Generating batch by batch gives the same predictions as one call over all prompts."""
    from orca_jax.evaluation.decoding import Decoder, Sampling

    decoder = Decoder(TINY, params, batch_size=2, eos_id=tokenizer.eos_id, pad_id=0)
    prompts = [[tokenizer.bos_id] + tokenizer.encode(t) for t in ("a b", "c d e f", "g", "h i j k l m", "n")]
    sampling = Sampling(temperature=1.0, seed=3)
    whole = decoder.generate(prompts, 4, sampling, example_ids=[5, 6, 7, 8, 9])
    parts = runner._generate_with_progress(decoder, prompts, 4, sampling, [5, 6, 7, 8, 9], "x/y")
    assert parts == whole


@pytest.mark.slow
def test_run_checkpoint_accuracies_go_to_tensorboard_at_its_step(tmp_path, bbh_fixture_dir, tokenizer, params):
    run = tmp_path / "stage1"
    step_dir = run / "checkpoints" / "1200"
    (step_dir / "params").mkdir(parents=True)  # the parameters themselves are passed in
    results = _evaluate(
        str(step_dir),
        tmp_path / "eval",
        bbh_fixture_dir,
        tokenizer,
        params,
        tasks=["navigate", "date_understanding"],
        metric="both",
    )
    scalars = read_scalars(run / report.TENSORBOARD_DIR)
    bbh = results["benchmarks"]["bbh"]
    expected = {
        "eval/bbh/navigate/accuracy": bbh["tasks"]["navigate"]["accuracy"],
        "eval/bbh/date_understanding/loglik_accuracy": bbh["tasks"]["date_understanding"]["loglik_accuracy"],
        "eval/bbh/average_paper_23/accuracy": bbh["aggregates"]["paper_23"]["accuracy"],
        "eval/bbh/average_all_27/loglik_accuracy": bbh["aggregates"]["all_27"]["loglik_accuracy"],
    }
    for tag, value in expected.items():
        assert scalars[tag] == (1200, pytest.approx(value)), tag
    assert len(scalars) == 2 * (2 + 2)  # 2 tasks + 2 aggregates, generation and log-likelihood


def test_no_tensorboard_for_converted_or_random_checkpoints(tmp_path, bbh_fixture_dir, tokenizer, params):
    converted = tmp_path / "converted"
    (converted / "params").mkdir(parents=True)
    assert report.run_checkpoint_step(str(converted)) is None
    assert report.run_checkpoint_step("random:1") is None
    _evaluate(str(converted), tmp_path / "eval", bbh_fixture_dir, tokenizer, params, tasks=["navigate"])
    assert not glob.glob(f"{tmp_path}/**/events.out.tfevents.*", recursive=True)


def test_stage_run_dir_resolves_to_its_latest_step(tmp_path):
    import numpy as np
    import orbax.checkpoint as ocp

    run = tmp_path / "stage2"
    manager = ocp.CheckpointManager(run / "checkpoints", options=ocp.CheckpointManagerOptions(create=True))
    for step in (10, 20):
        manager.save(step, args=ocp.args.Composite(params=ocp.args.StandardSave({"w": np.zeros(2)})))
    manager.wait_until_finished()
    assert report.run_checkpoint_step(str(run)) == (str(run), 20)
    assert report.run_checkpoint_step(str(run / "checkpoints" / "10")) == (str(run), 10)
