"""The stage trainer and the stage runner: thin gin-configurable entry points around the
pure train step (train_step.py).

`run_stages` trains the stages it lists, in order, each in its own run directory
`<model_dir>/<stage>` and under the gin scope of the same name, so `stage2/train_stage.x`
configures only stage two. A stage with a DONE file is skipped; one with checkpoints
resumes from the latest complete one, data position included; stage two initialises its
parameters from stage one's final checkpoint with a fresh optimizer and schedule. SIGTERM
(a preemption notice) saves at the current step and raises `Preempted` (preemption.py).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import gin
import jax
from etils import epath
from jax.sharding import Mesh

from orca_jax import partitioning
from orca_jax.models import LlamaConfig, model_config
from orca_jax.training import checkpoints as ckpt_lib
from orca_jax.training import model_card
from orca_jax.training import train_state as ts
from orca_jax.training.batches import BatchIterator, make_batches
from orca_jax.training.feeding import Prefetcher, host_data_shard
from orca_jax.training.flops import peak_flops_per_device
from orca_jax.training.loss import LossConfig
from orca_jax.training.metrics import MetricsWriter, Window
from orca_jax.training.optimizer import Optimizer, make_optimizer
from orca_jax.training.preemption import Preempted, PreemptionWatch
from orca_jax.training.train_step import batch_abstract, compile_train_step

log = logging.getLogger(__name__)


class NonFiniteError(RuntimeError):
    """Too many consecutive steps had a non-finite loss or gradient."""


@gin.configurable
@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    """When and how a stage saves checkpoints."""

    save_every_steps: int = 1000
    """Save after every this many steps (and always after the last step)."""
    keep: int | None = 3
    """Keep the newest this many checkpoints; None keeps all."""
    async_save: bool = True
    """Write checkpoints in the background (the device-to-host copy still blocks the step)."""


@dataclasses.dataclass(frozen=True)
class Setup:
    """What a stage is trained with; built and checked before anything is computed."""

    config: LlamaConfig
    mesh: Mesh
    rules: partitioning.Rules
    optimizer: Optimizer
    shardings: ts.TrainState
    abstract: ts.TrainState
    batch: dict[str, jax.ShapeDtypeStruct]


def build_setup(batch_size: int, sequence_length: int, num_microbatches: int, num_train_steps: int) -> Setup:
    """Model config, mesh, rules, optimizer and shardings; raises on any shape mismatch."""
    config = model_config()
    mesh = partitioning.make_mesh()
    rules = partitioning.logical_axis_rules()
    if sequence_length > config.max_len:
        raise ValueError(f"sequence_length {sequence_length} exceeds the model's max_len {config.max_len}")
    partitioning.check_batch_divisible(batch_size, mesh, rules)
    if batch_size % num_microbatches:
        raise ValueError(f"batch size {batch_size} is not divisible by num_microbatches {num_microbatches}")
    try:
        partitioning.check_batch_divisible(batch_size // num_microbatches, mesh, rules)
    except ValueError as e:
        raise ValueError(f"microbatch size {batch_size}/{num_microbatches}: {e}") from None
    optimizer = make_optimizer(num_train_steps)
    shardings = ts.state_shardings(config, optimizer, mesh, rules)
    return Setup(config, mesh, rules, optimizer, shardings, ts.abstract_state(config, optimizer, shardings),
                 batch_abstract(batch_size, sequence_length, mesh, rules))


def initial_state(setup: Setup, checkpointer: ckpt_lib.Checkpointer, *, init_from: str | None,
                  seed: int) -> tuple[ts.TrainState, dict[str, Any] | None]:
    """(state, data position): the latest checkpoint's, else step 0 from `init_from`'s
    params (fresh optimizer), else a random initialisation."""
    step = checkpointer.latest_step()
    if step is not None:
        log.info("resuming from checkpoint step %d", step)
        return checkpointer.restore(step, setup.abstract)
    if init_from is None:
        return ts.init_state(setup.config, setup.optimizer, setup.shardings, seed), None
    log.info("initialising params from %s", init_from)
    params = ckpt_lib.load_params(init_from, setup.config, setup.mesh, setup.rules)
    return ts.state_from_params(params, setup.optimizer, setup.shardings, seed), None


def resolve_init_from(init_from: str | None, init_from_previous_stage: bool,
                      previous_stage_dir: str | None) -> str | None:
    """The checkpoint a new stage starts from; checks it exists before anything is computed."""
    if init_from and init_from_previous_stage:
        raise ValueError("set either train_stage.init_from or train_stage.init_from_previous_stage, not both")
    if init_from_previous_stage:
        if previous_stage_dir is None:
            raise ValueError("train_stage.init_from_previous_stage=True but no stage runs before this one")
        if not ckpt_lib.is_done(previous_stage_dir):
            raise FileNotFoundError(f"previous stage {previous_stage_dir!r} has not finished (no DONE file)")
        init_from = previous_stage_dir
    if init_from:
        ckpt_lib.find_params_dir(init_from)  # raises FileNotFoundError naming the path
    return init_from or None


def write_gin_configs(run_dir: str, operative: bool) -> None:
    """`config.gin` (all bindings) and, once the step is built, `operative_config.gin`."""
    if jax.process_index() != 0:
        return
    path = epath.Path(run_dir)
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.gin").write_text(gin.config_str())
    if operative:
        (path / "operative_config.gin").write_text(gin.operative_config_str())


def update_streak(streak: int, skipped: Any) -> tuple[int, int]:
    """(streak after these steps, longest streak among them) of consecutive skipped steps."""
    worst = streak
    for flag in skipped:
        streak = streak + 1 if flag else 0
        worst = max(worst, streak)
    return streak, worst


@gin.configurable(denylist=["model_dir", "previous_stage_dir"])
def train_stage(model_dir: str, previous_stage_dir: str | None = None, *,
                mixture_or_task_name: str | None = None,
                sequence_length: int = 2048,
                batch_size: int = 128,
                num_train_steps: int | None = None,
                num_epochs: int | None = 4,
                num_microbatches: int = 1,
                init_from: str | None = None,
                init_from_previous_stage: bool = False,
                seed: int = 0,
                log_every_steps: int = 100,
                max_consecutive_nonfinite: int = 10,
                log_data_position: bool = False) -> int:
    """Train one stage in `model_dir`; returns the final step.

    Args:
      model_dir: this stage's run directory (checkpoints, metrics, configs).
      previous_stage_dir: the run directory of the stage before (set by run_stages).
      mixture_or_task_name: SeqIO mixture/task, or "synthetic" for the built-in source.
      sequence_length: tokens per packed row (Orca: 2048).
      batch_size: global batch, in packed rows.
      num_train_steps: optimizer steps (also the schedule's length); the stage ends earlier
        if the data's `num_epochs` run out first.
      num_epochs: passes over the data (Orca: 4 per stage); None repeats forever.
      num_microbatches: gradient accumulation: the step scans over this many microbatches.
      init_from: start from these params (a converted LLaMA dir, or any checkpoint) with a
        fresh optimizer; ignored when the stage has its own checkpoint to resume.
      init_from_previous_stage: start from the previous stage's final params (stage two).
      seed: model initialisation and data order.
      log_every_steps: metrics (and the only host syncs of the loop) every this many steps.
      max_consecutive_nonfinite: stop (after saving) when more steps than this in a row had a
        non-finite loss or gradient (their updates are skipped); checked at metric steps.
      log_data_position: also write the data iterator's position to metrics.jsonl.
    """
    for name, value in (("mixture_or_task_name", mixture_or_task_name), ("num_train_steps", num_train_steps)):
        if value is None:
            raise ValueError(f"train_stage.{name} is not set for {model_dir} (gin: bind it, or the macros "
                             "MIXTURE_OR_TASK_NAME/TRAIN_STEPS, or STAGEn_... in the stage files)")
    init_from = resolve_init_from(init_from, init_from_previous_stage, previous_stage_dir)
    setup = build_setup(batch_size, sequence_length, num_microbatches, num_train_steps)
    write_gin_configs(model_dir, operative=False)
    ckpt_lib.save_model_config(model_dir, setup.config)
    checkpointer = ckpt_lib.Checkpointer(str(epath.Path(model_dir) / ckpt_lib.CHECKPOINTS_DIR),
                                         **dataclasses.asdict(CheckpointConfig()))
    try:
        state, position = initial_state(setup, checkpointer, init_from=init_from, seed=seed)
        shard, num_shards = host_data_shard(setup.batch["decoder_input_tokens"].sharding,
                                            (batch_size, sequence_length))
        iterator = make_batches(mixture_or_task_name, sequence_length, batch_size, seed=seed,
                                       num_epochs=num_epochs, process_index=shard, process_count=num_shards)
        if position is not None:
            iterator.load_state_dict(position)
        model_card.save_card(model_dir, model_card.card_from_iterator(setup.config, iterator))
        start = time.perf_counter()
        step_fn = compile_train_step(setup.config, setup.optimizer, LossConfig(), num_microbatches,
                                     setup.mesh, setup.rules, setup.abstract, setup.batch)
        log.info("train step compiled in %.1fs", time.perf_counter() - start)
        write_gin_configs(model_dir, operative=True)
        loop = TrainLoop(setup, step_fn, checkpointer, iterator, model_dir, num_train_steps,
                         log_every_steps, max_consecutive_nonfinite, log_data_position)
        return loop.run(state)
    finally:
        checkpointer.close()


@dataclasses.dataclass
class TrainLoop:
    """Steps, metrics and checkpoints of one stage (host syncs only at metric steps)."""

    setup: Setup
    step_fn: Any
    checkpointer: ckpt_lib.Checkpointer
    iterator: BatchIterator
    model_dir: str
    num_train_steps: int
    log_every_steps: int
    max_consecutive_nonfinite: int
    log_data_position: bool
    streak: int = 0
    """Consecutive skipped (non-finite) steps so far."""

    @property
    def batch_shape(self) -> tuple[int, int]:
        return self.setup.batch["decoder_input_tokens"].shape

    def run(self, state: ts.TrainState) -> int:
        """Train from `state` to num_train_steps (or the end of the data); returns the final step."""
        step = start = int(jax.device_get(state.step))
        writer = MetricsWriter(self.model_dir, self.num_train_steps, start)
        feed = Prefetcher(self.iterator, self.setup.batch["decoder_input_tokens"].sharding, self.batch_shape[0])
        window, position = Window(), None
        watch = PreemptionWatch().start()
        try:
            while step < self.num_train_steps:
                try:
                    batch, position, waited = feed.next_with_wait()
                except StopIteration:
                    log.info("data exhausted after step %d", step)
                    break
                state, metrics = self.step_fn(state, batch)
                step += 1
                window.add(metrics, waited)
                if step % self.log_every_steps == 0 or step == self.num_train_steps:
                    self.report(step, window, writer, state, position)
                    window = Window()
                if watch.should_stop(step):
                    self.stop_for_preemption(step, state, position)
                if self.checkpointer.should_save(step):
                    self.checkpointer.save(step, state, position)
            if window.steps:
                self.report(step, window, writer, state, position)
            if step > start:
                self.checkpointer.save(step, state, position)
            self.checkpointer.wait()
            if watch.requested:  # a notice during the final save: do not start the next stage
                raise Preempted(step, self.model_dir)
            return step
        finally:
            watch.stop()
            feed.close()
            writer.close()

    def stop_for_preemption(self, step: int, state: ts.TrainState, position: dict[str, Any]) -> None:
        """Save at `step` (every host reaches the same step), wait for the save, raise Preempted.

        The steps since the last metric step are not written: a resumed run redoes none of
        them, and a partial window would add a record an uninterrupted run does not have.
        """
        start = time.perf_counter()
        self.checkpointer.save(step, state, position)
        self.checkpointer.wait()
        log.warning("preemption: checkpoint at step %d saved in %.1fs", step, time.perf_counter() - start)
        raise Preempted(step, self.model_dir)

    def report(self, step: int, window: Window, writer: MetricsWriter, state: ts.TrainState,
               position: dict[str, Any]) -> None:
        """Write the window's metrics; save and raise if too many steps in a row were skipped."""
        batch_size, length = self.batch_shape
        summary, skipped = window.summarize(
            slots_per_step=batch_size * length, num_devices=self.setup.mesh.size,
            flops_per_token=self.setup.config.flops_per_token(length), peak_flops=peak_flops_per_device())
        summary.update({f"data/{k}": v for k, v in self.iterator.stats().items()})
        write_data_summary = getattr(self.iterator, "write_data_summary", None)  # per-file counts (data pipeline)
        if write_data_summary is not None:
            write_data_summary(self.model_dir)
        self.streak, worst = update_streak(self.streak, skipped)
        summary["nonfinite_streak"] = self.streak
        writer.write(step, summary, {"data_position": position} if self.log_data_position else None)
        if worst > self.max_consecutive_nonfinite:
            self.checkpointer.save(step, state, position)
            self.checkpointer.wait()
            raise NonFiniteError(
                f"{worst} consecutive steps up to step {step} had a non-finite loss or gradient "
                f"(limit train_stage.max_consecutive_nonfinite={self.max_consecutive_nonfinite}); "
                f"their updates were skipped and the state was saved at step {step} in {self.model_dir}")


@gin.configurable
def run_stages(model_dir: str = gin.REQUIRED, stages: tuple[str, ...] = ("stage1",),
               evaluate_after_stage: bool = False) -> None:
    """Train `stages` in order, each in `<model_dir>/<stage>` under gin scope `<stage>`.

    Idempotent: a stage with a DONE file is skipped; an interrupted one resumes.

    Args:
      model_dir: the run's root directory (MODEL_DIR).
      stages: stage names, which are also their gin scopes and directory names.
      evaluate_after_stage: after each stage, call
        orca_jax.evaluation.runner.evaluate(checkpoint=<stage dir>, output_dir=<stage dir>/eval)
        (once; configured by gin under the stage's scope).
    """
    if evaluate_after_stage:
        evaluator()  # fails before any compute if the evaluation runner is missing
    previous, trained = None, []
    for name in stages:
        stage_dir = str(epath.Path(model_dir) / name)
        if ckpt_lib.is_done(stage_dir):
            log.info("stage %s is done (%s); skipping", name, stage_dir)
        else:
            if not trained:
                write_gin_configs(model_dir, operative=False)
            with gin.config_scope(name):
                final_step = train_stage(stage_dir, previous_stage_dir=previous)
            ckpt_lib.mark_done(stage_dir, final_step)
            log.info("stage %s finished at step %d", name, final_step)
            trained.append(name)
        if evaluate_after_stage:
            with gin.config_scope(name):
                evaluate_stage(stage_dir)
        previous = stage_dir
    write_root_operative_config(model_dir, trained, stages)


def write_root_operative_config(model_dir: str, trained: list[str], stages: tuple[str, ...]) -> None:
    """`MODEL_DIR/operative_config.gin` after run_stages, unless this invocation trained less
    than an earlier one recorded: gin's operative config only holds what ran in this process,
    so a rerun that skipped finished stages would replace the full config with a few lines."""
    exists = (epath.Path(model_dir) / "operative_config.gin").exists()
    if trained and (not exists or list(trained) == list(stages)):
        write_gin_configs(model_dir, operative=True)


def evaluator():
    """orca_jax.evaluation.runner.evaluate, imported lazily (it brings the evaluation stack)."""
    try:
        with gin.unlock_config():  # its configurables register now unless a gin file imported it
            from orca_jax.evaluation.runner import evaluate
    except ImportError as e:
        raise ImportError("run_stages.evaluate_after_stage=True needs orca_jax.evaluation.runner.evaluate, "
                          f"which cannot be imported: {e}") from e
    return evaluate


def evaluate_stage(stage_dir: str) -> None:
    """Evaluate a finished stage into `<stage_dir>/eval`, once (EVAL_DONE marks it done)."""
    marker = epath.Path(stage_dir) / "EVAL_DONE"
    if marker.exists():
        return
    evaluator()(checkpoint=stage_dir, output_dir=str(epath.Path(stage_dir) / "eval"))
    if jax.process_index() == 0:
        marker.write_text("")
