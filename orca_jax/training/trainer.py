"""The stage trainer and the stage runner around the pure train step (train_step.py), and
the typed configs they take: `RunConfig` and, per stage, `StageConfig` (model, data,
optimizer, partitioning, checkpoint and loss configs). Gin binds the configs' fields;
`configs_from_gin` builds them once, each stage under the gin scope of its name (so
`stage2/OptimizerConfig.x` configures only stage two), and nothing below reads gin.

`run_stages` trains the stages it lists, in order, each in its own run directory
`<model_dir>/<stage>`. A stage with a DONE file is skipped; one with checkpoints
resumes from the latest complete one, data position included; stage two initialises its
parameters from stage one's final checkpoint with a fresh optimizer and schedule. SIGTERM
(a preemption notice) saves at the current step and raises `Preempted` (preemption.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
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
from orca_jax.training.batches import BatchIterator, DataConfig, make_batches
from orca_jax.training.feeding import DeviceFeeder, host_data_shard
from orca_jax.training.flops import peak_flops_per_device
from orca_jax.training.loss import LossConfig
from orca_jax.training.metrics import MetricsWriter, Window
from orca_jax.training.optimizer import Optimizer, OptimizerConfig
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


@gin.configurable(denylist=["model", "data", "optimizer", "partitioning", "checkpoint", "loss"])
@dataclasses.dataclass(frozen=True)
class StageConfig:
    """Everything one stage is trained with (gin: `StageConfig.x`, `stage2/StageConfig.x`; the
    parts are configured as `model_config.x`, `DataConfig.x`, `OptimizerConfig.x`...)."""

    model: LlamaConfig
    """The model (gin: model_config.preset / .overrides)."""
    data: DataConfig
    """Data, batch and sequence length (gin: DataConfig.x)."""
    optimizer: OptimizerConfig
    """Optimizer and schedule (gin: OptimizerConfig.x)."""
    partitioning: partitioning.PartitioningConfig
    """Mesh shape and logical-axis rules (gin: PartitioningConfig.x)."""
    checkpoint: CheckpointConfig
    """Checkpoint cadence (gin: CheckpointConfig.x)."""
    loss: LossConfig
    """Loss (gin: LossConfig.x)."""
    num_train_steps: int | None = None
    """Optimizer steps (also the schedule's length); the stage ends earlier if the data's
    num_epochs run out first (TRAIN_STEPS, STAGEn_TRAIN_STEPS)."""
    num_microbatches: int = 1
    """Gradient accumulation: the step scans over this many microbatches."""
    init_from: str | None = None
    """Start from these params (a converted LLaMA dir, or any checkpoint) with a fresh
    optimizer; ignored when the stage has its own checkpoint to resume (INIT_FROM)."""
    init_from_previous_stage: bool = False
    """Start from the previous stage's final params (stage two)."""
    seed: int = 0
    """Model initialisation and data order."""
    log_every_steps: int = 100
    """Metrics (and the only host syncs of the loop) every this many steps."""
    max_consecutive_nonfinite: int = 10
    """Stop (after saving) when more steps than this in a row had a non-finite loss or
    gradient (their updates are skipped); checked at metric steps."""
    log_data_position: bool = False
    """Also write the data iterator's position to metrics.jsonl."""


@gin.configurable
@dataclasses.dataclass(frozen=True)
class RunConfig:
    """The stages of a run (gin: `RunConfig.x`)."""

    model_dir: str = gin.REQUIRED
    """The run's root directory (MODEL_DIR); stage `s` trains in `<model_dir>/<s>`."""
    stages: tuple[str, ...] = ("stage1",)
    """Stage names, in order: also their gin scopes and directory names."""
    evaluate_after_stage: bool = False
    """After each stage, call orca_jax.evaluation.runner.evaluate(checkpoint=<stage dir>,
    output_dir=<stage dir>/eval) once, with the stage's EvalConfig (gin, under the stage's scope)."""


def stage_config(name: str | None) -> StageConfig:
    """Stage `name`'s typed config, built from gin under its scope (None: no scope)."""
    with gin.config_scope(name) if name else contextlib.nullcontext():
        return StageConfig(
            model=model_config(),
            data=DataConfig(),
            optimizer=OptimizerConfig(),
            partitioning=partitioning.PartitioningConfig(),
            checkpoint=CheckpointConfig(),
            loss=LossConfig(),
        )


def configs_from_gin() -> tuple[RunConfig, dict[str, StageConfig]]:
    """The run's and every stage's typed configs, built once from the parsed gin config."""
    run = RunConfig()
    return run, {name: stage_config(name) for name in run.stages}


@dataclasses.dataclass(frozen=True)
class Setup:
    """What a stage is trained with; built and checked before anything is computed."""

    config: StageConfig
    mesh: Mesh
    rules: partitioning.Rules
    optimizer: Optimizer
    shardings: ts.TrainState
    abstract: ts.TrainState
    batch: dict[str, jax.ShapeDtypeStruct]


def validate(config: StageConfig, name: str | None = None) -> None:
    """Checks that need no devices; each error names the gin binding to change."""
    where = f"{name}/" if name else ""
    data = config.data
    for field, value, macro in (
        ("DataConfig.mixture_or_task_name", data.mixture_or_task_name, "MIXTURE_OR_TASK_NAME"),
        ("StageConfig.num_train_steps", config.num_train_steps, "TRAIN_STEPS"),
    ):
        if value is None:
            raise ValueError(
                f"{where}{field} is not set (gin: bind it, or the macro {macro}, or STAGEn_{macro} in the stage files)"
            )
    if data.sequence_length > config.model.max_len:
        raise ValueError(
            f"{where}DataConfig.sequence_length={data.sequence_length} (SEQUENCE_LENGTH) exceeds the "
            f"model's max_len {config.model.max_len} (model_config.overrides)"
        )
    chunk = config.loss.chunk_size
    if chunk is not None and (chunk < 1 or data.sequence_length % chunk):
        raise ValueError(
            f"{where}LossConfig.chunk_size={chunk} does not divide DataConfig.sequence_length={data.sequence_length}"
        )
    if data.batch_size % config.num_microbatches:
        raise ValueError(
            f"{where}DataConfig.batch_size={data.batch_size} (BATCH_SIZE) is not divisible by "
            f"StageConfig.num_microbatches={config.num_microbatches}"
        )
    if config.init_from and config.init_from_previous_stage:
        raise ValueError(
            f"set either {where}StageConfig.init_from or {where}StageConfig.init_from_previous_stage, not both"
        )


def compile_step(setup: Setup):
    """The stage's jitted train step, lowered and compiled for `setup` (what aot_compile compiles too)."""
    config = setup.config
    return compile_train_step(
        config.model,
        setup.optimizer,
        config.loss,
        config.num_microbatches,
        setup.mesh,
        setup.rules,
        setup.abstract,
        setup.batch,
    )


def build_setup(config: StageConfig, name: str | None = None, devices: Sequence[jax.Device] | None = None) -> Setup:
    """Mesh, rules, optimizer and shardings of stage `name` over `devices` (default: all);
    raises on any config or shape mismatch, before anything is computed."""
    validate(config, name)
    data = config.data
    mesh = config.partitioning.mesh(devices)
    rules = config.partitioning.rules()
    where, n = (f"{name}/" if name else ""), config.num_microbatches
    for rows, what in (
        (data.batch_size, f"DataConfig.batch_size={data.batch_size} (BATCH_SIZE)"),
        (data.batch_size // n, f"microbatch size {data.batch_size}/{n} (StageConfig.num_microbatches)"),
    ):
        try:
            partitioning.check_batch_divisible(rows, mesh, rules)
        except ValueError as e:
            raise ValueError(
                f"{where}{what}: {e}; PartitioningConfig.mesh_shape={config.partitioning.mesh_shape}"
            ) from None
    optimizer = config.optimizer.make(config.num_train_steps or 1)
    shardings = ts.state_shardings(config.model, optimizer, mesh, rules)
    return Setup(
        config,
        mesh,
        rules,
        optimizer,
        shardings,
        ts.abstract_state(config.model, optimizer, shardings),
        batch_abstract(data.batch_shape, mesh, rules),
    )


def initial_state(
    setup: Setup, checkpointer: ckpt_lib.Checkpointer, *, init_from: str | None
) -> tuple[ts.TrainState, dict[str, Any] | None]:
    """(state, data position): the latest checkpoint's, else step 0 from `init_from`'s
    params (fresh optimizer), else a random initialisation."""
    model, seed = setup.config.model, setup.config.seed
    step = checkpointer.latest_step()
    if step is not None:
        log.info("resuming from checkpoint step %d", step)
        return checkpointer.restore(step, setup.abstract)
    if init_from is None:
        return ts.init_state(model, setup.optimizer, setup.shardings, seed), None
    log.info("initialising params from %s", init_from)
    params = ckpt_lib.load_params(init_from, model, setup.mesh, setup.rules)
    return ts.state_from_params(params, setup.optimizer, setup.shardings, seed), None


def resolve_init_from(config: StageConfig, previous_stage_dir: str | None) -> str | None:
    """The checkpoint a new stage starts from; checks it exists before anything is computed."""
    init_from = config.init_from
    if config.init_from_previous_stage:
        if previous_stage_dir is None:
            raise ValueError("StageConfig.init_from_previous_stage=True but no stage runs before this one")
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


def train_stage(setup: Setup, model_dir: str, previous_stage_dir: str | None = None) -> int:
    """Train one stage, set up by `build_setup`, in `model_dir` (checkpoints, metrics,
    configs); `previous_stage_dir` is the run directory of the stage before. Returns the final step."""
    config = setup.config
    init_from = resolve_init_from(config, previous_stage_dir)
    write_gin_configs(model_dir, operative=False)
    ckpt_lib.save_model_config(model_dir, config.model)
    checkpointer = ckpt_lib.Checkpointer(
        str(epath.Path(model_dir) / ckpt_lib.CHECKPOINTS_DIR), **dataclasses.asdict(config.checkpoint)
    )
    try:
        state, position = initial_state(setup, checkpointer, init_from=init_from)
        shard, num_shards = host_data_shard(setup.batch["decoder_input_tokens"].sharding, config.data.batch_shape)
        iterator = make_batches(config.data, seed=config.seed, process_index=shard, process_count=num_shards)
        if position is not None:
            iterator.load_state_dict(position)
        model_card.save_card(model_dir, model_card.card_from_iterator(config.model, iterator))
        start = time.perf_counter()
        step_fn = compile_step(setup)
        log.info("train step compiled in %.1fs", time.perf_counter() - start)
        write_gin_configs(model_dir, operative=True)
        return TrainLoop(setup, step_fn, checkpointer, iterator, model_dir).run(state)
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
    streak: int = 0
    """Consecutive skipped (non-finite) steps so far."""

    @property
    def config(self) -> StageConfig:
        return self.setup.config

    def run(self, state: ts.TrainState) -> int:
        """Train from `state` to num_train_steps (or the end of the data); returns the final step."""
        step = start = int(jax.device_get(state.step))
        num_train_steps = self.config.num_train_steps
        writer = MetricsWriter(self.model_dir, num_train_steps, start)
        feed = DeviceFeeder(
            self.iterator, self.setup.batch["decoder_input_tokens"].sharding, self.config.data.batch_size
        )
        window, position = Window(), None
        watch = PreemptionWatch().start()
        try:
            while step < num_train_steps:
                try:
                    batch, position, waited = feed.next_with_wait()
                except StopIteration:
                    log.info("data exhausted after step %d", step)
                    break
                state, metrics = self.step_fn(state, batch)
                step += 1
                window.add(metrics, waited)
                if step % self.config.log_every_steps == 0 or step == num_train_steps:
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

    def report(
        self, step: int, window: Window, writer: MetricsWriter, state: ts.TrainState, position: dict[str, Any]
    ) -> None:
        """Write the window's metrics; save and raise if too many steps in a row were skipped."""
        batch_size, length = self.config.data.batch_shape
        summary, skipped = window.summarize(
            slots_per_step=batch_size * length,
            num_devices=self.setup.mesh.size,
            flops_per_token=self.config.model.flops_per_token(length),
            peak_flops=peak_flops_per_device(),
        )
        summary.update({f"data/{k}": v for k, v in self.iterator.stats().items()})
        write_data_summary = getattr(self.iterator, "write_data_summary", None)  # per-file counts (data pipeline)
        if write_data_summary is not None:
            write_data_summary(self.model_dir)
        self.streak, worst = update_streak(self.streak, skipped)
        summary["nonfinite_streak"] = self.streak
        writer.write(step, summary, {"data_position": position} if self.config.log_data_position else None)
        limit = self.config.max_consecutive_nonfinite
        if worst > limit:
            self.checkpointer.save(step, state, position)
            self.checkpointer.wait()
            raise NonFiniteError(
                f"{worst} consecutive steps up to step {step} had a non-finite loss or gradient "
                f"(limit StageConfig.max_consecutive_nonfinite={limit}); "
                f"their updates were skipped and the state was saved at step {step} in {self.model_dir}"
            )


def run_stages(run: RunConfig, stages: Mapping[str, StageConfig]) -> None:
    """Train `run.stages` in order, each in `<model_dir>/<stage>` with `stages[stage]`.

    Every stage is set up (and so validated) before any trains. Idempotent: a stage with a
    DONE file is skipped; an interrupted one resumes.
    """
    setups = {name: build_setup(stages[name], name) for name in run.stages}
    evaluate = evaluator() if run.evaluate_after_stage else None  # fails before any compute
    eval_configs = {name: eval_config(name) for name in run.stages} if evaluate else {}
    previous, trained = None, []
    for name in run.stages:
        stage_dir = str(epath.Path(run.model_dir) / name)
        if ckpt_lib.is_done(stage_dir):
            log.info("stage %s is done (%s); skipping", name, stage_dir)
        else:
            if not trained:
                write_gin_configs(run.model_dir, operative=False)
            final_step = train_stage(setups[name], stage_dir, previous_stage_dir=previous)
            ckpt_lib.mark_done(stage_dir, final_step)
            log.info("stage %s finished at step %d", name, final_step)
            trained.append(name)
        if evaluate is not None:
            with gin.config_scope(name):
                evaluate_stage(evaluate, stage_dir, eval_configs[name])
        previous = stage_dir
    write_root_operative_config(run.model_dir, trained, run.stages)


def write_root_operative_config(model_dir: str, trained: list[str], stages: tuple[str, ...]) -> None:
    """`MODEL_DIR/operative_config.gin` after run_stages, unless this invocation trained less
    than an earlier one recorded: gin's operative config only holds what ran in this process,
    so a rerun that skipped finished stages would replace the full config with a few lines."""
    exists = (epath.Path(model_dir) / "operative_config.gin").exists()
    if trained and (not exists or list(trained) == list(stages)):
        write_gin_configs(model_dir, operative=True)


def evaluator() -> Callable[..., Any]:
    """orca_jax.evaluation.runner.evaluate, imported lazily (gin_utils registers it before parsing)."""
    try:
        from orca_jax.evaluation.runner import evaluate
    except ImportError as e:
        raise ImportError(
            "RunConfig.evaluate_after_stage=True needs orca_jax.evaluation.runner.evaluate, "
            f"which cannot be imported: {e}"
        ) from e
    return evaluate


def eval_config(name: str) -> Any:
    """Stage `name`'s EvalConfig, built from gin under its scope (validated before any training)."""
    from orca_jax.evaluation.runner import EvalConfig

    with gin.config_scope(name):
        return EvalConfig()


def evaluate_stage(evaluate: Callable[..., Any], stage_dir: str, config: Any) -> None:
    """Evaluate a finished stage into `<stage_dir>/eval` with `config`, once (EVAL_DONE marks it done)."""
    marker = epath.Path(stage_dir) / "EVAL_DONE"
    if marker.exists():
        return
    evaluate(checkpoint=stage_dir, output_dir=str(epath.Path(stage_dir) / "eval"), config=config)
    if jax.process_index() == 0:
        marker.write_text("")
