"""Checkpoints: orbax CheckpointManager for stage runs, and params loading for everyone else.

A stage run directory (local path or gs://) holds:

    <stage_dir>/model_config.json        LlamaConfig fields (dataclasses.asdict)
    <stage_dir>/checkpoints/<step>/params          unboxed params dict (orbax PyTree)
    <stage_dir>/checkpoints/<step>/train_state     {"step", "opt_state", "rng"}
    <stage_dir>/checkpoints/<step>/data_iterator   JSON: every host's iterator position
    <stage_dir>/DONE                      written once the final checkpoint is complete

A converted Hugging Face checkpoint (orca_jax.convert) has the same `params` item:
`<dir>/params` + `<dir>/model_config.json`. So `<dir>/params` is what `load_params` reads
for a converted dir or a step dir, and the latest complete step's for a stage run dir.

This module registers no gin configurables, so it can be imported after gin is locked
(the evaluation runner does). Saves are asynchronous (the device-to-host copy blocks, the write does not). orbax writes a
step into a temporary directory and renames it when complete, so a process killed during a
save leaves no step behind; leftover temporary directories are ignored and cleaned up.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import flax.linen as nn
import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath
from jax.experimental import multihost_utils
from jax.sharding import Mesh, SingleDeviceSharding

from orca_jax import partitioning
from orca_jax.models import LlamaConfig
from orca_jax.training.train_state import TrainState, abstract_boxed_params, params_shardings

MODEL_CONFIG_FILE = "model_config.json"
DONE_FILE = "DONE"
CHECKPOINTS_DIR = "checkpoints"


class Checkpointer:
    """The train state and data position of one stage, saved every N steps under `directory`."""

    def __init__(self, directory: str, *, save_every_steps: int = 1000, keep: int | None = 3,
                 async_save: bool = True):
        """See trainer.CheckpointConfig for the arguments."""
        self.save_every_steps = save_every_steps
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, enable_async_checkpointing=async_save, cleanup_tmp_directories=True, create=True)
        self.manager = ocp.CheckpointManager(epath.Path(directory), options=options)

    def latest_step(self) -> int | None:
        """The newest complete checkpoint's step, or None."""
        return self.manager.latest_step()

    def should_save(self, step: int) -> bool:
        return step % self.save_every_steps == 0

    def save(self, step: int, state: TrainState, data_state: dict[str, Any]) -> None:
        """Start saving `state` and this host's data position (collective: every host calls it)."""
        if step in self.manager.all_steps():
            return
        per_process = _allgather_json(data_state)
        args = ocp.args.Composite(
            params=ocp.args.StandardSave(state.params),
            train_state=ocp.args.StandardSave({"step": state.step, "opt_state": state.opt_state,
                                               "rng": state.rng}),
            data_iterator=ocp.args.JsonSave({"process_count": len(per_process), "per_process": per_process}))
        self.manager.save(step, args=args, force=True)

    def restore(self, step: int, abstract: TrainState) -> tuple[TrainState, dict[str, Any]]:
        """The state saved at `step` placed like `abstract`, and this host's data position."""
        rest = {"step": abstract.step, "opt_state": abstract.opt_state, "rng": abstract.rng}
        args = ocp.args.Composite(params=ocp.args.StandardRestore(abstract.params),
                                  train_state=ocp.args.StandardRestore(rest),
                                  data_iterator=ocp.args.JsonRestore())
        out = self.manager.restore(step, args=args)
        data = out.data_iterator
        if data["process_count"] != jax.process_count():
            raise ValueError(f"checkpoint step {step} was saved by {data['process_count']} processes; "
                             f"this run has {jax.process_count()}: the data position cannot be mapped")
        ts = out.train_state
        state = TrainState(step=ts["step"], params=out.params, opt_state=ts["opt_state"], rng=ts["rng"])
        return state, data["per_process"][jax.process_index()]

    def wait(self) -> None:
        """Block until pending saves are complete."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()


def _allgather_json(obj: Any) -> list[Any]:
    """Every process's JSON-able `obj`, in process order (a collective with several hosts)."""
    if jax.process_count() == 1:
        return [obj]
    data = np.frombuffer(json.dumps(obj).encode(), np.uint8)
    lengths = np.asarray(multihost_utils.process_allgather(np.array([data.size], np.int32))).reshape(-1)
    padded = np.zeros(int(lengths.max()), np.uint8)
    padded[:data.size] = data
    gathered = np.asarray(multihost_utils.process_allgather(padded))
    return [json.loads(bytes(gathered[i, :n])) for i, n in enumerate(lengths)]


# -- run-directory files ---------------------------------------------------------------------

def save_model_config(directory: str, config: LlamaConfig) -> None:
    """Write `<directory>/model_config.json` (primary host only)."""
    if jax.process_index() == 0:
        path = epath.Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        (path / MODEL_CONFIG_FILE).write_text(json.dumps(dataclasses.asdict(config), indent=2))


def is_done(stage_dir: str) -> bool:
    return (epath.Path(stage_dir) / DONE_FILE).exists()


def mark_done(stage_dir: str, step: int) -> None:
    """Mark a stage finished (after its final checkpoint is complete)."""
    if jax.process_index() == 0:
        (epath.Path(stage_dir) / DONE_FILE).write_text(json.dumps({"final_step": step}))
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(f"done:{stage_dir}")


# -- loading params (evaluation, INIT_FROM, stage two) ---------------------------------------

def find_params_dir(checkpoint: str) -> epath.Path:
    """`<checkpoint>/params` (converted or step dir), else the latest complete step's params."""
    path = epath.Path(checkpoint)
    if (path / "params").exists():
        return path / "params"
    if (path / CHECKPOINTS_DIR).exists():
        # The step listing itself (a read-only CheckpointManager logs three warnings).
        latest = ocp.step.latest_step_metadata(path / CHECKPOINTS_DIR, ocp.step.standard_name_format())
        if latest is not None:
            return path / CHECKPOINTS_DIR / str(latest.step) / "params"
    raise FileNotFoundError(
        f"no checkpoint at {checkpoint!r}: expected <dir>/params (a converted or step directory) or "
        f"<dir>/{CHECKPOINTS_DIR}/<step>/params (a stage run directory with a complete step)")


def load_model_config(checkpoint: str) -> LlamaConfig | None:
    """The LlamaConfig recorded with `checkpoint` (run, step or converted dir), or None."""
    path = epath.Path(checkpoint)
    for candidate in (path, path.parent.parent):  # run/converted dir, or <run>/checkpoints/<step>
        file = candidate / MODEL_CONFIG_FILE
        if file.exists():
            fields = json.loads(file.read_text())
            known = {f.name for f in dataclasses.fields(LlamaConfig)}
            return LlamaConfig(**{k: v for k, v in fields.items() if k in known})
    return None


SHAPE_FIELDS = ("vocab_size", "d_model", "n_layers", "n_heads", "num_kv_heads", "dims_per_head", "d_ff")


def check_same_shapes(expected: LlamaConfig, recorded: LlamaConfig | None, checkpoint: str) -> None:
    """Raise naming the fields where a checkpoint's recorded model differs in shape."""
    if recorded is None:
        return
    diff = {f: (getattr(recorded, f), getattr(expected, f)) for f in SHAPE_FIELDS
            if getattr(recorded, f) != getattr(expected, f)}
    if diff:
        raise ValueError(f"checkpoint {checkpoint!r} holds a different model: "
                         + ", ".join(f"{k}={a} (checkpoint) vs {b} (config)" for k, (a, b) in diff.items()))


def _check_tree(metadata: Any, abstract: Any, where: str) -> None:
    """Raise naming the params missing from, extra in, or shaped differently in the checkpoint."""
    saved = {jax.tree_util.keystr(k): tuple(v.shape) for k, v in jax.tree_util.tree_flatten_with_path(metadata)[0]}
    wanted = {jax.tree_util.keystr(k): tuple(v.shape) for k, v in jax.tree_util.tree_flatten_with_path(abstract)[0]}
    problems = [f"missing {k}" for k in sorted(wanted.keys() - saved.keys())]
    problems += [f"unexpected {k}" for k in sorted(saved.keys() - wanted.keys())]
    problems += [f"{k}: shape {saved[k]} in checkpoint, {wanted[k]} expected"
                 for k in sorted(wanted.keys() & saved.keys()) if saved[k] != wanted[k]]
    if problems:
        raise ValueError(f"params at {where} do not match the model: " + "; ".join(problems[:10]))


def load_params(checkpoint: str, config: LlamaConfig | None = None, mesh: Mesh | None = None,
                rules: partitioning.Rules | None = None) -> Any:
    """The unboxed params dict of `checkpoint`, placed with `mesh`'s shardings.

    Args:
      checkpoint: a stage run dir (its latest complete step), a step dir
        (`<run>/checkpoints/<step>`), or a converted dir (`<dir>/params` + model_config.json).
      config: the model the params are for; default: the config recorded with the checkpoint.
        Params are cast to its param_dtype (fp32 master weights by default).
      mesh: shard the params over this mesh with `rules` (default rules if None); without a
        mesh they go to the default device.
    """
    params_dir = find_params_dir(checkpoint)
    # The handler's metadata: the Checkpointer's would look for step metadata in the item
    # directory of a managed step and log "Metadata file does not exist".
    metadata = ocp.StandardCheckpointHandler().metadata(params_dir).tree
    recorded = load_model_config(checkpoint)
    if config is not None:
        check_same_shapes(config, recorded, checkpoint)
    config = config or recorded
    if config is None and mesh is not None:
        raise ValueError(f"checkpoint {checkpoint!r} records no model config: pass `config` to shard it")
    if config is None:
        device = SingleDeviceSharding(jax.devices()[0])
        abstract = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), metadata)
    else:
        abstract = _abstract_params(config, mesh, rules)
        _check_tree(metadata, abstract, str(params_dir))
    return ocp.StandardCheckpointer().restore(params_dir, abstract)


def _abstract_params(config: LlamaConfig, mesh: Mesh | None, rules: partitioning.Rules | None) -> Any:
    shapes = nn.unbox(abstract_boxed_params(config))
    if mesh is None:
        shardings = jax.tree.map(lambda _: SingleDeviceSharding(jax.devices()[0]), shapes)
    else:
        shardings = params_shardings(config, mesh, rules if rules is not None else partitioning.logical_axis_rules())
    return jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), shapes, shardings)
