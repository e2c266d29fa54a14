"""Checkpoints on disk: the one module that saves and loads them (trainer, converter, evaluation).

Layouts (local paths or gs://):

    <stage_dir>/model_config.json                  LlamaConfig fields (dataclasses.asdict)
    <stage_dir>/model_card.json                    tokenizer, chat template (model_card.py)
    <stage_dir>/checkpoints/<step>/params          unboxed params dict (orbax PyTree)
    <stage_dir>/checkpoints/<step>/train_state     {"step", "opt_state", "rng"}
    <stage_dir>/checkpoints/<step>/data_iterator   JSON: every host's iterator position
    <stage_dir>/DONE                               written once the final checkpoint is complete

    <converted_dir>/params             the same params item (`python -m orca_jax.convert import_hf`)
    <converted_dir>/model_config.json  as above
    <converted_dir>/model_card.json    as above; the tokenizer files sit beside it
    <converted_dir>/hf_config.json     the source config.json, reused by export for token ids

`load_params` takes any of them: a stage dir (its latest complete step), a step dir, a
converted dir, or a bare params item. The model config is read from `model_config.json` of
the directory or, for a step dir, of its stage dir; a field LlamaConfig lacks is an error.

This module registers no gin configurables, so it can be imported after gin is locked
(the evaluation runner does). Saves are asynchronous (the device-to-host copy blocks, the
write does not). orbax writes a step into a temporary directory and renames it when
complete, so a process killed during a save leaves the previous step as the latest;
leftover temporary directories are ignored and cleaned up.
"""

from __future__ import annotations

import dataclasses
import json
import os
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
from orca_jax.training import model_card
from orca_jax.training.train_state import TrainState, abstract_boxed_params

PARAMS_ITEM = "params"
MODEL_CONFIG_FILE = "model_config.json"
HF_CONFIG_FILE = "hf_config.json"
DONE_FILE = "DONE"
CHECKPOINTS_DIR = "checkpoints"


class ShapeMismatchError(ValueError):
    """Params whose tree or shapes differ from what a model config expects (names the tensors)."""


class Checkpointer:
    """The train state and data position of one stage, saved every N steps under `directory`."""

    def __init__(self, directory: str, *, save_every_steps: int = 1000, keep: int | None = 3, async_save: bool = True):
        """See trainer.CheckpointConfig for the arguments."""
        self.save_every_steps = save_every_steps
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, enable_async_checkpointing=async_save, cleanup_tmp_directories=True, create=True
        )
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
            train_state=ocp.args.StandardSave({"step": state.step, "opt_state": state.opt_state, "rng": state.rng}),
            data_iterator=ocp.args.JsonSave({"process_count": len(per_process), "per_process": per_process}),
        )
        self.manager.save(step, args=args, force=True)

    def restore(self, step: int, abstract: TrainState) -> tuple[TrainState, dict[str, Any]]:
        """The state saved at `step` placed like `abstract`, and this host's data position."""
        rest = {"step": abstract.step, "opt_state": abstract.opt_state, "rng": abstract.rng}
        args = ocp.args.Composite(
            params=ocp.args.StandardRestore(abstract.params),
            train_state=ocp.args.StandardRestore(rest),
            data_iterator=ocp.args.JsonRestore(),
        )
        out = self.manager.restore(step, args=args)
        data = out.data_iterator
        if data["process_count"] != jax.process_count():
            raise ValueError(
                f"checkpoint step {step} was saved by {data['process_count']} processes; "
                f"this run has {jax.process_count()}: the data position cannot be mapped"
            )
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
    padded[: data.size] = data
    gathered = np.asarray(multihost_utils.process_allgather(padded))
    return [json.loads(bytes(gathered[i, :n])) for i, n in enumerate(lengths)]


# -- directory files -------------------------------------------------------------------------


def _abs(path: str) -> epath.Path:
    """Orbax wants absolute local paths; gs:// and other URLs are left alone."""
    return epath.Path(path if "://" in path else os.path.abspath(path))


def save_model_config(directory: str, config: LlamaConfig) -> None:
    """Write `<directory>/model_config.json` (primary host only)."""
    if jax.process_index() == 0:
        path = epath.Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        (path / MODEL_CONFIG_FILE).write_text(json.dumps(dataclasses.asdict(config), indent=2))


def save_converted(
    out_dir: str,
    params: dict,
    config: LlamaConfig,
    card: dict[str, Any],
    *,
    hf_config: dict | None = None,
    overwrite: bool = False,
) -> None:
    """Write a converted checkpoint: `params` (unboxed dict), its config, its model card and the
    source `hf_config` (layout in the module doc; single process)."""
    out = _abs(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(out / PARAMS_ITEM, params, force=overwrite)
    save_model_config(str(out), config)
    model_card.save_card(str(out), card)
    if hf_config is not None:
        (out / HF_CONFIG_FILE).write_text(json.dumps(hf_config, indent=2))


def is_done(stage_dir: str) -> bool:
    return (epath.Path(stage_dir) / DONE_FILE).exists()


def mark_done(stage_dir: str, step: int) -> None:
    """Mark a stage finished (after its final checkpoint is complete)."""
    if jax.process_index() == 0:
        (epath.Path(stage_dir) / DONE_FILE).write_text(json.dumps({"final_step": step}))
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(f"done:{stage_dir}")


def find_params_dir(checkpoint: str) -> epath.Path:
    """`<checkpoint>/params` (converted or step dir), the latest complete step's params (stage
    dir), or `checkpoint` itself when it is a params item."""
    path = _abs(checkpoint)
    if (path / PARAMS_ITEM).exists():
        return path / PARAMS_ITEM
    if (path / CHECKPOINTS_DIR).exists():
        # The step listing itself (a read-only CheckpointManager logs three warnings).
        latest = ocp.step.latest_step_metadata(path / CHECKPOINTS_DIR, ocp.step.standard_name_format())
        if latest is not None:
            return path / CHECKPOINTS_DIR / str(latest.step) / PARAMS_ITEM
    if (path / "_METADATA").exists():  # an orbax PyTree item
        return path
    raise FileNotFoundError(
        f"no checkpoint at {checkpoint!r}: expected <dir>/params (a converted or step directory), "
        f"<dir>/{CHECKPOINTS_DIR}/<step>/params (a stage run directory with a complete step) or an orbax item"
    )


def load_model_config(checkpoint: str) -> LlamaConfig | None:
    """The LlamaConfig recorded with `checkpoint` (stage, step or converted dir), or None.

    Raises ValueError naming the file and the fields when the file has fields LlamaConfig lacks.
    """
    path = _abs(checkpoint)
    for candidate in (path, path.parent.parent):  # stage/converted dir, or <stage>/checkpoints/<step>
        file = candidate / MODEL_CONFIG_FILE
        if file.exists():
            fields = json.loads(file.read_text())
            unknown = sorted(set(fields) - {f.name for f in dataclasses.fields(LlamaConfig)})
            if unknown:
                raise ValueError(f"{file} has fields LlamaConfig lacks: {unknown} (written by a newer orca_jax?)")
            return LlamaConfig(**fields)
    return None


def load_hf_config(checkpoint: str) -> dict | None:
    """The source Hugging Face config.json saved by the import, if any."""
    path = _abs(checkpoint) / HF_CONFIG_FILE
    return json.loads(path.read_text()) if path.exists() else None


# -- params: shapes, layout, loading -----------------------------------------------------------


def param_shapes(config: LlamaConfig) -> Any:
    """The unboxed param tree of `Llama(config)` as jax.ShapeDtypeStruct (nothing allocated)."""
    return nn.unbox(abstract_boxed_params(config))


def compare_shapes(got: Any, want: Any, got_what: str = "checkpoint", want_what: str = "config") -> None:
    """Raise ShapeMismatchError naming the tensors missing, unexpected or shaped differently in `got`."""

    def flat(tree):
        leaves = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: hasattr(x, "shape"))[0]
        return {"/".join(str(getattr(k, "key", k)) for k in path): tuple(leaf.shape) for path, leaf in leaves}

    got_flat, want_flat = flat(got), flat(want)
    missing = sorted(set(want_flat) - set(got_flat))
    unexpected = sorted(set(got_flat) - set(want_flat))
    if missing or unexpected:
        raise ShapeMismatchError(
            f"{got_what} does not have the {want_what}'s params: missing {missing[:8]}, "
            f"unexpected {unexpected[:8]} (scanned vs unrolled layout?)"
        )
    for path, shape in want_flat.items():
        if got_flat[path] != shape:
            raise ShapeMismatchError(f"tensor {path}: {got_what} shape {got_flat[path]} != {want_what} shape {shape}")


def check_param_shapes(params: Any, config: LlamaConfig, what: str = "params") -> None:
    """Raise ShapeMismatchError (naming the tensor and both shapes) unless `params` fit `config`."""
    compare_shapes(params, param_shapes(config), what, "config")


def scan_layout(params: dict, scan_layers: bool) -> dict:
    """`params` in the scanned (`layers/block`, stacked) or unrolled (`layers_{i}`) layout."""
    if scan_layers and "layers" not in params:
        n = sum(1 for k in params if k.startswith("layers_"))
        blocks = [params[f"layers_{i}"] for i in range(n)]
        stacked = jax.tree.map(lambda *xs: (jax.numpy if isinstance(xs[0], jax.Array) else np).stack(xs), *blocks)
        rest = {k: v for k, v in params.items() if not k.startswith("layers_")}
        return {**rest, "layers": {"block": stacked}}
    if not scan_layers and "layers" in params:
        block = params["layers"]["block"]
        n = jax.tree.leaves(block)[0].shape[0]
        rest = {k: v for k, v in params.items() if k != "layers"}
        return {**rest, **{f"layers_{i}": jax.tree.map(lambda x, i=i: x[i], block) for i in range(n)}}
    return params


SHAPE_FIELDS = ("vocab_size", "d_model", "n_layers", "n_heads", "num_kv_heads", "dims_per_head", "d_ff")


def check_same_shapes(expected: LlamaConfig, recorded: LlamaConfig | None, checkpoint: str) -> None:
    """Raise ShapeMismatchError naming the fields where a checkpoint's recorded model differs in shape."""
    if recorded is None:
        return
    diff = {
        f: (getattr(recorded, f), getattr(expected, f))
        for f in SHAPE_FIELDS
        if getattr(recorded, f) != getattr(expected, f)
    }
    if diff:
        raise ShapeMismatchError(
            f"checkpoint {checkpoint!r} holds a different model: "
            + ", ".join(f"{k}={a} (checkpoint) vs {b} (config)" for k, (a, b) in diff.items())
        )


def _stored_shapes(params_dir: epath.Path) -> Any:
    """The stored param tree's metadata (shapes, dtypes; no array is read)."""
    # The handler's metadata: the Checkpointer's would look for step metadata in the item
    # directory of a managed step and log "Metadata file does not exist".
    return ocp.StandardCheckpointHandler().metadata(params_dir).tree


def load_params(
    checkpoint: str,
    config: LlamaConfig | None = None,
    mesh: Mesh | None = None,
    rules: partitioning.Rules | None = None,
) -> Any:
    """The unboxed params dict of `checkpoint`, placed with `mesh`'s shardings.

    Args:
      checkpoint: a stage run dir (its latest complete step), a step dir, a converted dir
        or a params item (see the module doc).
      config: the model the params are for; default: the config recorded with the checkpoint.
        Params are cast to its param_dtype (fp32 master weights by default). Shapes are
        checked before anything is read (ShapeMismatchError names the tensor).
      mesh: shard the params over this mesh with `rules` (default rules if None); without a
        mesh they go to the default device.
    """
    params_dir = find_params_dir(checkpoint)
    recorded = load_model_config(checkpoint)
    if config is not None:
        check_same_shapes(config, recorded, checkpoint)
    config = config or recorded
    if config is None:
        raise ValueError(f"checkpoint {checkpoint!r} records no model config ({MODEL_CONFIG_FILE}): pass `config`")
    shapes = param_shapes(config)
    compare_shapes(_stored_shapes(params_dir), shapes, f"checkpoint {params_dir}", "model")
    if mesh is None:
        shardings = jax.tree.map(lambda _: SingleDeviceSharding(jax.devices()[0]), shapes)
    else:
        rules = rules if rules is not None else partitioning.logical_axis_rules()
        shardings = partitioning.params_shardings(abstract_boxed_params(config), mesh, rules)
    abstract = jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), shapes, shardings)
    with ocp.StandardCheckpointer() as ckptr:
        return ckptr.restore(params_dir, abstract)


def load_host_params(checkpoint: str) -> dict:
    """The params of `checkpoint` as stored (dtype, layout) in host numpy arrays: for export."""
    with ocp.StandardCheckpointer() as ckptr:
        return ckptr.restore(find_params_dir(checkpoint))
