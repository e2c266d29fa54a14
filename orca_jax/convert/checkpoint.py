"""Converted checkpoints on disk, and checks of a param tree against a LlamaConfig.

Layout of a converted checkpoint directory (what `INIT_FROM` points at):

    <dir>/params/            orbax PyTree checkpoint (StandardCheckpointer) of the unboxed
                             params dict: {"embed", "final_norm": {"scale"}, "lm_head": {"kernel"},
                             "layers": {"block": {...}}} (scanned) or "layers_{i}" (unrolled)
    <dir>/model_config.json  dataclasses.asdict(LlamaConfig) the params were made for
    <dir>/hf_config.json     (import only) the source config.json, reused by export for token ids

Restore with `load_params(dir, target)`, where `target` is a tree of jax.ShapeDtypeStruct
with shardings (e.g. from `jax.eval_shape` of the model init plus the partitioner's
shardings): each host then reads only its shards. Without a target the arrays come back as
host numpy arrays.
"""

from __future__ import annotations

import dataclasses
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from orca_jax.models.config import LlamaConfig
from orca_jax.models.llama import Llama

PARAMS_ITEM = "params"
MODEL_CONFIG_FILE = "model_config.json"
HF_CONFIG_FILE = "hf_config.json"


class ShapeMismatchError(ValueError):
    """A tensor whose shape differs from what the target config expects (names both shapes)."""


# ----------------------------------------------------------------------------- shape checks


def param_shapes(config: LlamaConfig) -> dict:
    """The unboxed param tree of `Llama(config)` as jax.ShapeDtypeStruct (nothing allocated)."""
    cfg = config.replace(attention_impl="xla", remat_policy="none")
    tokens = jnp.zeros((1, 1), jnp.int32)
    return jax.eval_shape(lambda: nn.unbox(Llama(cfg).init(jax.random.key(0), tokens)["params"]))


def _flat_shapes(tree) -> dict[str, tuple[int, ...]]:
    leaves = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: hasattr(x, "shape"))[0]
    return {"/".join(str(getattr(k, "key", k)) for k in path): tuple(leaf.shape) for path, leaf in leaves}


def compare_shapes(got, want, got_what: str = "checkpoint", want_what: str = "config") -> None:
    """Raise ShapeMismatchError unless trees `got` and `want` have the same paths and shapes."""
    got_flat, want_flat = _flat_shapes(got), _flat_shapes(want)
    missing = sorted(set(want_flat) - set(got_flat))
    unexpected = sorted(set(got_flat) - set(want_flat))
    if missing or unexpected:
        raise ShapeMismatchError(f"{got_what} does not have the {want_what}'s params: missing {missing[:8]}, "
                                 f"unexpected {unexpected[:8]} (scanned vs unrolled layout?)")
    for path, shape in want_flat.items():
        if got_flat[path] != shape:
            raise ShapeMismatchError(
                f"tensor {path}: {got_what} shape {got_flat[path]} != {want_what} shape {shape}")


def check_param_shapes(params, config: LlamaConfig, what: str = "params") -> None:
    """Raise ShapeMismatchError (naming the tensor and both shapes) unless `params` fit `config`."""
    compare_shapes(params, param_shapes(config), what, "config")


# ----------------------------------------------------------------------------- layout


def scan_layout(params: dict, scan_layers: bool) -> dict:
    """`params` in the scanned (`layers/block`, stacked) or unrolled (`layers_{i}`) layout."""
    if scan_layers and "layers" not in params:
        n = sum(1 for k in params if k.startswith("layers_"))
        blocks = [params[f"layers_{i}"] for i in range(n)]
        stacked = jax.tree.map(lambda *xs: (jnp if isinstance(xs[0], jax.Array) else np).stack(xs), *blocks)
        rest = {k: v for k, v in params.items() if not k.startswith("layers_")}
        return {**rest, "layers": {"block": stacked}}
    if not scan_layers and "layers" in params:
        block = params["layers"]["block"]
        n = jax.tree.leaves(block)[0].shape[0]
        rest = {k: v for k, v in params.items() if k != "layers"}
        return {**rest, **{f"layers_{i}": jax.tree.map(lambda x, i=i: x[i], block) for i in range(n)}}
    return params


# ----------------------------------------------------------------------------- save / load


def _abs(path: str) -> epath.Path:
    """Orbax wants absolute local paths; leave gs:// and other URLs alone."""
    return epath.Path(path if "://" in path else os.path.abspath(path))


def save_converted(out_dir: str, params: dict, config: LlamaConfig, *, hf_config: dict | None = None,
                   overwrite: bool = False) -> None:
    """Write `params` (unboxed dict) and `config` as a converted checkpoint (layout in the module doc)."""
    out = _abs(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(out / PARAMS_ITEM, params, force=overwrite)
    (out / MODEL_CONFIG_FILE).write_text(json.dumps(dataclasses.asdict(config), indent=2))
    if hf_config is not None:
        (out / HF_CONFIG_FILE).write_text(json.dumps(hf_config, indent=2))


def params_path(checkpoint_dir: str) -> epath.Path:
    """`<dir>/params` when present, else `dir` itself (a bare orbax params checkpoint)."""
    path = _abs(checkpoint_dir)
    return path / PARAMS_ITEM if (path / PARAMS_ITEM).exists() else path


def load_model_config(checkpoint_dir: str, **overrides) -> LlamaConfig:
    """The LlamaConfig stored with params, with `overrides`.

    Reads `<dir>/model_config.json` (converted dir), else `<dir>/../../model_config.json` (a
    trainer step dir `<stage_dir>/checkpoints/<step>`, whose stage dir records the config).
    """
    path = _abs(checkpoint_dir)
    candidates = [path / MODEL_CONFIG_FILE, path.parent.parent / MODEL_CONFIG_FILE]
    found = [c for c in candidates if c.exists()]
    if not found:
        raise FileNotFoundError(f"no {MODEL_CONFIG_FILE} for {checkpoint_dir} "
                                f"(looked at {[str(c) for c in candidates]}); pass a preset instead")
    fields = json.loads(found[0].read_text())
    known = {f.name for f in dataclasses.fields(LlamaConfig)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"{checkpoint_dir}/{MODEL_CONFIG_FILE} has fields LlamaConfig lacks: {unknown}")
    return LlamaConfig(**{**fields, **overrides})


def load_hf_config(checkpoint_dir: str) -> dict | None:
    """The source HF config.json saved by the import, if any."""
    path = _abs(checkpoint_dir) / HF_CONFIG_FILE
    return json.loads(path.read_text()) if path.exists() else None


def stored_param_shapes(checkpoint_dir: str) -> dict:
    """The param tree's shapes as stored (metadata only; no array is read)."""
    with ocp.StandardCheckpointer() as ckptr:
        meta = ckptr.metadata(params_path(checkpoint_dir))
    tree = getattr(meta, "item_metadata", meta)
    return getattr(tree, "tree", tree)


def load_params(checkpoint_dir: str, target=None) -> dict:
    """Restore converted params: the trainer's `INIT_FROM` entry point.

    Args:
      checkpoint_dir: a directory written by `save_converted` (or a bare orbax params item).
      target: optional tree of jax.ShapeDtypeStruct (with `.sharding`) or arrays giving the
        layout, shapes, dtypes and shardings to restore into; shapes are checked first and a
        mismatch raises ShapeMismatchError naming the tensor and both shapes. Without it,
        params come back as host numpy arrays in their stored dtype.
    """
    path = params_path(checkpoint_dir)
    if target is not None:
        compare_shapes(stored_param_shapes(checkpoint_dir), target, f"checkpoint {checkpoint_dir}", "target")
    with ocp.StandardCheckpointer() as ckptr:
        return ckptr.restore(path, target) if target is not None else ckptr.restore(path)


def load_converted(checkpoint_dir: str) -> tuple[dict, LlamaConfig]:
    """`(params, config)` of a converted checkpoint, params as host numpy arrays."""
    return load_params(checkpoint_dir), load_model_config(checkpoint_dir)
