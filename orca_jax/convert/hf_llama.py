"""Hugging Face LLaMA-family checkpoints <-> orca-jax parameters.

Families (`model_type`): llama (LLaMA-1/2, Llama-3.x with rope_type "llama3", SmolLM2), mistral
(grouped-query attention, `sliding_window` honoured by the attention mask), qwen2 (Qwen2/2.5:
q/k/v biases). Tied embeddings (`tie_word_embeddings: true`) stay one parameter, `embed`: the
checkpoint has no lm_head tensor, and neither has the export. Config features the model does
not implement raise UnsupportedConfigError naming the config.json field.

Tensor mapping (HF `nn.Linear` weights are `[out, in]`; ours are `[in, ...]`):

    model.embed_tokens.weight             [vocab, embed]     -> embed            (as is)
    model.norm.weight                     [embed]            -> final_norm/scale
    lm_head.weight                        [vocab, embed]     -> lm_head/kernel   [embed, vocab]  (transpose;
                                                                absent when tied)
    model.layers.{i}.
      input_layernorm.weight              [embed]            -> attention_norm/scale
      self_attn.q_proj.weight             [heads*hd, embed]  -> attention/q_proj [embed, heads, hd]
      self_attn.k_proj.weight / v_proj    [kv*hd, embed]     -> attention/k_proj [embed, kv, hd] / v_proj
      self_attn.o_proj.weight             [embed, heads*hd]  -> attention/o_proj [heads, hd, embed]
      self_attn.q_proj.bias               [heads*hd]         -> attention/q_bias [heads, hd]   (qwen2)
      self_attn.k_proj.bias / v_proj.bias [kv*hd]            -> attention/k_bias [kv, hd] / v_bias
      post_attention_layernorm.weight     [embed]            -> mlp_norm/scale
      mlp.gate_proj.weight / up_proj      [mlp, embed]       -> mlp/gate_proj    [embed, mlp] / up_proj
      mlp.down_proj.weight                [embed, mlp]       -> mlp/down_proj    [mlp, embed]

Our rotary embedding uses Hugging Face's rotate_half layout, so q/k need no permutation.
Block i lives at `layers_{i}/...` (unrolled) or at index i of `layers/block/...` (scanned,
stacked on a leading `layers` axis), per `LlamaConfig.scan_layers`.

Tensors go through numpy and safetensors only: no torch, no transformers.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator

import ml_dtypes
import numpy as np

from orca_jax.convert.safetensors_io import HFCheckpointReader, write_sharded
from orca_jax.models.config import LlamaConfig
from orca_jax.models.presets import get_preset
from orca_jax.training.checkpoints import ShapeMismatchError, check_param_shapes

log = logging.getLogger(__name__)

# Per-block tensors: HF name suffix -> (our path inside the block, layout kind).
LAYER_TENSORS: dict[str, tuple[tuple[str, ...], str]] = {
    "input_layernorm.weight": (("attention_norm", "scale"), "vector"),
    "self_attn.q_proj.weight": (("attention", "q_proj"), "q"),
    "self_attn.k_proj.weight": (("attention", "k_proj"), "kv"),
    "self_attn.v_proj.weight": (("attention", "v_proj"), "kv"),
    "self_attn.o_proj.weight": (("attention", "o_proj"), "o"),
    "post_attention_layernorm.weight": (("mlp_norm", "scale"), "vector"),
    "mlp.gate_proj.weight": (("mlp", "gate_proj"), "in"),
    "mlp.up_proj.weight": (("mlp", "up_proj"), "in"),
    "mlp.down_proj.weight": (("mlp", "down_proj"), "out"),
}
# Per-block bias tensors of Qwen2 (`LlamaConfig.qkv_bias`).
BIAS_TENSORS: dict[str, tuple[tuple[str, ...], str]] = {
    "self_attn.q_proj.bias": (("attention", "q_bias"), "q_bias"),
    "self_attn.k_proj.bias": (("attention", "k_bias"), "kv_bias"),
    "self_attn.v_proj.bias": (("attention", "v_bias"), "kv_bias"),
}
EMBED, FINAL_NORM, LM_HEAD = "model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"
EXPORT_DTYPES = {"float32": np.float32, "bfloat16": ml_dtypes.bfloat16, "float16": np.float16}
# Buffers some older checkpoints carry that are not parameters.
_IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)


ARCHITECTURES = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM"}
# rope dict keys (`rope_scaling` in transformers 4, `rope_parameters` in 5) per rope_type.
_ROPE_KEYS = {
    "default": {"rope_type", "type", "rope_theta", "partial_rotary_factor"},
    "llama3": {
        "rope_type",
        "type",
        "rope_theta",
        "partial_rotary_factor",
        "factor",
        "low_freq_factor",
        "high_freq_factor",
        "original_max_position_embeddings",
    },
}


class UnsupportedConfigError(ValueError):
    """A Hugging Face config feature this converter (or the model) does not implement."""


def layer_tensors(config: LlamaConfig) -> dict[str, tuple[tuple[str, ...], str]]:
    """HF per-block tensor suffix -> (our path inside the block, layout kind) for `config`."""
    return {**LAYER_TENSORS, **(BIAS_TENSORS if config.qkv_bias else {})}


# ----------------------------------------------------------------------------- configs


def read_hf_config(hf_dir: str) -> dict:
    """config.json of a Hugging Face model directory as a dict."""
    with open(os.path.join(hf_dir, "config.json")) as f:
        return json.load(f)


def _rope_fields(hf: dict) -> dict:
    """LlamaConfig RoPE fields from a transformers 4.x (`rope_theta`, `rope_scaling`) or 5.x
    (`rope_parameters`) config; rope types other than default and llama3 are refused."""
    scaling, params = hf.get("rope_scaling"), hf.get("rope_parameters")
    field, rope = ("rope_parameters", params) if params else ("rope_scaling", scaling or {})
    if params and scaling and scaling != params:
        raise UnsupportedConfigError(f"rope_scaling={scaling!r} and rope_parameters={params!r} disagree")
    if not isinstance(rope, dict) or any(isinstance(v, dict) for v in rope.values()):
        raise UnsupportedConfigError(f"{field}={rope!r}: per-layer RoPE parameters are not supported")
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type not in _ROPE_KEYS:
        raise UnsupportedConfigError(
            f"{field}.rope_type={rope_type!r} ({rope!r}) is not supported: the model implements RoPE types "
            f"{sorted(_ROPE_KEYS)}"
        )
    unknown = sorted(set(rope) - _ROPE_KEYS[rope_type])
    if unknown:
        raise UnsupportedConfigError(f"{field} fields {unknown} are not supported for rope_type {rope_type!r}")
    partial = rope.get("partial_rotary_factor", hf.get("partial_rotary_factor", 1.0))
    if partial not in (None, 1, 1.0):
        raise UnsupportedConfigError(f"partial_rotary_factor={partial} is not supported: RoPE covers all of head_dim")
    fields = {"rope_theta": float(rope.get("rope_theta", hf.get("rope_theta", 10000.0)))}
    if rope_type == "llama3":
        missing = [k for k in ("factor", "low_freq_factor", "high_freq_factor") if k not in rope]
        if missing:
            raise UnsupportedConfigError(f"{field} (rope_type 'llama3') lacks {missing}")
        fields.update(
            rope_type="llama3",
            rope_factor=float(rope["factor"]),
            rope_low_freq_factor=float(rope["low_freq_factor"]),
            rope_high_freq_factor=float(rope["high_freq_factor"]),
            rope_original_max_len=int(
                rope.get("original_max_position_embeddings", hf.get("max_position_embeddings", 8192))
            ),
        )
    return fields


def _family_fields(hf: dict, model_type: str) -> dict:
    """qkv_bias / sliding_window / family for one model_type; refuses what the model lacks."""
    fields: dict = {"family": model_type}
    if model_type == "qwen2":
        fields["qkv_bias"] = True
        layer_types = hf.get("layer_types") or []
        if hf.get("use_sliding_window", False) or "sliding_attention" in layer_types:
            raise UnsupportedConfigError(
                f"use_sliding_window={hf.get('use_sliding_window')} (layer_types={layer_types}): Qwen2's per-layer "
                "sliding windows (max_window_layers) are not supported"
            )
        return fields
    for flag in ("attention_bias", "mlp_bias"):
        if hf.get(flag, False):
            raise UnsupportedConfigError(
                f"{flag}=True is not supported for model_type {model_type!r}: only Qwen2's q/k/v biases are implemented"
            )
    if model_type == "mistral":
        if hf.get("layer_types"):
            raise UnsupportedConfigError(
                f"layer_types={hf['layer_types']!r} (alternating attention, as Ministral) is not supported"
            )
        window = hf.get("sliding_window")
        fields["sliding_window"] = int(window) if window is not None else None
    return fields


def llama_config_from_hf(hf: dict, **overrides) -> LlamaConfig:
    """The LlamaConfig of a Hugging Face llama/mistral/qwen2 config.json dict, with field `overrides`.

    Refuses (UnsupportedConfigError, naming the field) what the model does not implement: other
    model types, rope types other than default/llama3, partial rotary, attention/MLP biases outside
    Qwen2's q/k/v, Qwen2's per-layer sliding windows, activations other than SiLU.
    """
    model_type = hf.get("model_type", "llama")
    if model_type not in ARCHITECTURES:
        raise UnsupportedConfigError(
            f"model_type={model_type!r} is not supported; expected one of {sorted(ARCHITECTURES)}"
        )
    family = _family_fields(hf, model_type)
    act = hf.get("hidden_act", "silu")
    if act not in ("silu", "swish"):
        raise UnsupportedConfigError(f"hidden_act={act!r} is not supported; the MLP is SwiGLU (silu)")
    n_heads = hf["num_attention_heads"]
    n_kv_heads = hf.get("num_key_value_heads") or n_heads
    head_dim = hf.get("head_dim") or hf["hidden_size"] // n_heads
    fields = dict(
        vocab_size=hf["vocab_size"],
        d_model=hf["hidden_size"],
        n_layers=hf["num_hidden_layers"],
        n_heads=n_heads,
        # None = the defaults (n_heads, d_model // n_heads), as the presets write them.
        n_kv_heads=None if n_kv_heads == n_heads else n_kv_heads,
        head_dim=None if head_dim * n_heads == hf["hidden_size"] else head_dim,
        d_ff=hf["intermediate_size"],
        max_len=hf.get("max_position_embeddings", 2048),
        norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
        initializer_range=float(hf.get("initializer_range", 0.02)),
        tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
        **_rope_fields(hf),
        **family,
    )
    fields.update(overrides)
    return LlamaConfig(**fields)


def hf_config_from_llama(
    config: LlamaConfig, *, vocab_size: int | None = None, dtype: str = "float32", base: dict | None = None
) -> dict:
    """A transformers config.json dict for `config`, of its family (Llama/Mistral/Qwen2ForCausalLM).

    `base` (e.g. the config.json the weights were imported from) supplies the fields we do
    not model (bos/eos/pad token ids, ...); every architecture field is overwritten. RoPE is
    written the transformers-4 way (`rope_theta`, `rope_scaling`: null or the llama3 dict), which
    5.x also reads. Raises UnsupportedConfigError when the family cannot express the config
    (q/k/v biases outside qwen2, a sliding window in llama).
    """
    family = config.family
    if config.qkv_bias != (family == "qwen2"):
        raise UnsupportedConfigError(
            f"qkv_bias={config.qkv_bias} cannot be exported as family {family!r} "
            "(only qwen2 has q/k/v biases, and always)"
        )
    if config.sliding_window is not None and family != "mistral":
        raise UnsupportedConfigError(
            f"sliding_window={config.sliding_window} cannot be exported as family "
            f"{family!r}; only mistral is exported with a sliding window"
        )
    vocab = vocab_size or config.vocab_size
    dropped = (
        "rope_parameters",
        "rope_scaling",
        "dtype",
        "transformers_version",
        "layer_types",
        "attention_bias",
        "mlp_bias",
        "sliding_window",
        "use_sliding_window",
        "max_window_layers",
    )
    hf = {k: v for k, v in (base or {}).items() if k not in dropped}
    rope_scaling = None
    if config.rope_type == "llama3":
        rope_scaling = {
            "rope_type": "llama3",
            "factor": config.rope_factor,
            "low_freq_factor": config.rope_low_freq_factor,
            "high_freq_factor": config.rope_high_freq_factor,
            "original_max_position_embeddings": config.rope_original_max_len,
        }
    hf.update(
        architectures=[ARCHITECTURES[family]],
        model_type=family,
        vocab_size=vocab,
        hidden_size=config.d_model,
        intermediate_size=config.d_ff,
        num_hidden_layers=config.n_layers,
        num_attention_heads=config.n_heads,
        num_key_value_heads=config.num_kv_heads,
        head_dim=config.dims_per_head,
        max_position_embeddings=config.max_len,
        rms_norm_eps=config.norm_eps,
        rope_theta=config.rope_theta,
        rope_scaling=rope_scaling,
        hidden_act="silu",
        tie_word_embeddings=config.tie_word_embeddings,
        initializer_range=config.initializer_range,
        torch_dtype=dtype,
    )
    if family == "llama":
        hf.update(attention_bias=False, mlp_bias=False)
    elif family == "mistral":
        hf.update(sliding_window=config.sliding_window)
    else:
        hf.update(use_sliding_window=False, sliding_window=None, max_window_layers=config.n_layers)
    hf.setdefault("bos_token_id", 1)
    hf.setdefault("eos_token_id", 2)
    if hf.get("pad_token_id") is not None and hf["pad_token_id"] >= vocab:
        hf["pad_token_id"] = None
    return hf


# ----------------------------------------------------------------------------- shapes


def hf_tensor_shapes(
    config: LlamaConfig, vocab_size: int | None = None, include_lm_head: bool | None = None
) -> dict[str, tuple[int, ...]]:
    """Every tensor name of a HF checkpoint for `config` -> its HF shape, in file order.

    `include_lm_head` defaults to "the head is untied"."""
    if include_lm_head is None:
        include_lm_head = not config.tie_word_embeddings
    v = vocab_size or config.vocab_size
    d, h, kv, hd, f = config.d_model, config.n_heads, config.num_kv_heads, config.dims_per_head, config.d_ff
    per_kind = {
        "vector": (d,),
        "q": (h * hd, d),
        "kv": (kv * hd, d),
        "o": (d, h * hd),
        "in": (f, d),
        "out": (d, f),
        "q_bias": (h * hd,),
        "kv_bias": (kv * hd,),
    }
    shapes = {EMBED: (v, d)}
    for i in range(config.n_layers):
        for suffix, (_, kind) in layer_tensors(config).items():
            shapes[f"model.layers.{i}.{suffix}"] = per_kind[kind]
    shapes[FINAL_NORM] = (d,)
    if include_lm_head:
        shapes[LM_HEAD] = (v, d)
    return shapes


def _to_ours(w: np.ndarray, kind: str, config: LlamaConfig) -> np.ndarray:
    """A HF layer tensor in our layout (a view where possible; the caller copies)."""
    d, h, kv, hd = config.d_model, config.n_heads, config.num_kv_heads, config.dims_per_head
    if kind == "vector":
        return w
    if kind == "q":
        return w.T.reshape(d, h, hd)
    if kind == "kv":
        return w.T.reshape(d, kv, hd)
    if kind == "o":
        return w.T.reshape(h, hd, d)
    if kind == "q_bias":
        return w.reshape(h, hd)
    if kind == "kv_bias":
        return w.reshape(kv, hd)
    return w.T  # "in" [mlp, embed] -> [embed, mlp]; "out" [embed, mlp] -> [mlp, embed]


def _to_hf(w: np.ndarray, kind: str) -> np.ndarray:
    """One of our layer tensors in HF's layout (inverse of `_to_ours`)."""
    if kind == "vector":
        return w
    if kind in ("q", "kv"):
        return w.reshape(w.shape[0], -1).T
    if kind == "o":
        return w.reshape(-1, w.shape[-1]).T
    if kind in ("q_bias", "kv_bias"):
        return w.reshape(-1)
    return w.T


def _get(tree: dict, path: tuple[str, ...]):
    for key in path:
        tree = tree[key]
    return tree


def _set(tree: dict, path: tuple[str, ...], value) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


# ----------------------------------------------------------------------------- import


def _target_config(
    hf: dict,
    *,
    preset: str | None,
    add_pad_rows: int,
    scan_layers: bool | None,
    param_dtype: str | None,
    overrides: dict | None,
) -> LlamaConfig:
    """The config the imported params must fit: the preset's if named, else config.json's (+ pad rows)."""
    changes = dict(overrides or {})
    if scan_layers is not None:
        changes["scan_layers"] = scan_layers
    if param_dtype is not None:
        changes["param_dtype"] = param_dtype
    from_hf = llama_config_from_hf(hf, vocab_size=hf["vocab_size"] + add_pad_rows, **changes)
    if preset is None:
        return from_hf
    target = get_preset(preset, **changes)
    layout = [
        f"{name}: config.json {getattr(from_hf, name)} vs preset {getattr(target, name)}"
        for name in ("tie_word_embeddings", "qkv_bias")
        if getattr(from_hf, name) != getattr(target, name)
    ]
    if layout:
        raise ShapeMismatchError(f"checkpoint does not fit preset {preset!r}: {'; '.join(layout)}")
    numerics = [
        f"{name}: config.json {getattr(from_hf, name)} vs preset {getattr(target, name)}"
        for name in ("rope_theta", "norm_eps", "max_len", "rope_type", "sliding_window", "family")
        if getattr(from_hf, name) != getattr(target, name)
    ]
    if numerics:
        log.warning(
            "checkpoint config differs from preset %s (the preset's values are kept): %s", preset, "; ".join(numerics)
        )
    return target


def _check_tensors(reader: HFCheckpointReader, config: LlamaConfig, src_vocab: int, what: str) -> None:
    """Check names and shapes of every checkpoint tensor against `config` before reading any data."""
    tied = config.tie_word_embeddings
    expected = hf_tensor_shapes(config, vocab_size=src_vocab)
    present = {n for n in reader.keys() if not n.endswith(_IGNORED_SUFFIXES)}
    if tied:
        present.discard(LM_HEAD)  # tied checkpoints may still store it; HF ignores it, so do we
    for name, want in expected.items():  # shapes first: they say more than a missing layer does
        got = reader.shape(name) if name in present else want
        if got != want:
            hint = ""
            if name in (EMBED, LM_HEAD) and got[1:] == want[1:]:
                hint = f" (vocab rows differ: pass add_pad_rows={config.vocab_size - got[0]}?)"
            raise ShapeMismatchError(f"tensor {name}: checkpoint shape {got} != shape {want} expected by {what}{hint}")
    missing = [n for n in expected if n not in present]
    unexpected = sorted(present - set(expected))
    if missing or unexpected:
        layers = {int(n.split(".")[2]) for n in present if n.startswith("model.layers.")}
        raise ShapeMismatchError(
            f"checkpoint {reader.hf_dir} does not match {what} (checkpoint has {len(layers)} layers, "
            f"{what} expects {config.n_layers}): missing tensors {missing[:8]}"
            f"{' ...' if len(missing) > 8 else ''}; unexpected tensors {unexpected[:8]}"
            f"{' ...' if len(unexpected) > 8 else ''}"
        )


def import_hf(
    hf_dir: str,
    *,
    scan_layers: bool | None = None,
    add_pad_rows: int = 0,
    param_dtype: str | None = None,
    preset: str | None = None,
    config_overrides: dict | None = None,
) -> tuple[dict, LlamaConfig]:
    """Load a Hugging Face llama/mistral/qwen2 safetensors checkpoint as orca-jax params.

    Args:
      hf_dir: directory with config.json and model.safetensors (or shards + index).
      scan_layers: output layout, stacked (`layers/block/...`) or unrolled (`layers_{i}/...`);
        None keeps the target config's default.
      add_pad_rows: rows appended to the vocabulary (embed rows and untied lm_head columns), e.g. 1
        for LLaMA's 32000 -> Orca's 32001. Each new row is initialised to the mean of the
        existing rows, so existing ids' logits are unchanged and the new ids start "average".
      param_dtype: dtype of the returned params (default float32, the master weights).
      preset: check the checkpoint against this preset (e.g. "llama_13b") instead of trusting
        config.json; the returned config is the preset's.
      config_overrides: other LlamaConfig fields for the returned config (e.g. dtype).

    Returns `(params, config)`: an unboxed nested dict of numpy arrays, as
    `nn.unbox(Llama(config).init(...)["params"])` would have it, and its LlamaConfig.
    Host memory: one copy of the output plus one source tensor at a time. Raises
    ShapeMismatchError naming the tensor and both shapes, UnsupportedConfigError on HF
    features the model lacks.
    """
    if add_pad_rows < 0:
        raise ValueError(f"add_pad_rows={add_pad_rows} must be >= 0")
    hf = read_hf_config(hf_dir)
    config = _target_config(
        hf,
        preset=preset,
        add_pad_rows=add_pad_rows,
        scan_layers=scan_layers,
        param_dtype=param_dtype,
        overrides=config_overrides,
    )
    what = f"preset {preset!r}" if preset else "config.json"
    src_vocab = config.vocab_size - add_pad_rows
    reader = HFCheckpointReader(hf_dir)
    _check_tensors(reader, config, src_vocab, what)
    if preset is not None:  # same tensor shapes can hide a different head split
        from_hf = llama_config_from_hf(hf)
        for name in ("n_heads", "num_kv_heads", "dims_per_head"):
            if getattr(from_hf, name) != getattr(config, name):
                raise ShapeMismatchError(
                    f"{name}: config.json has {getattr(from_hf, name)}, preset {preset!r} has {getattr(config, name)}"
                )

    dtype = config.weights_dtype
    params: dict = {}
    embed = np.empty((config.vocab_size, config.d_model), dtype)
    embed[:src_vocab] = reader.get(EMBED)
    _fill_pad_rows(embed, src_vocab)
    params["embed"] = embed
    for suffix, (path, kind) in layer_tensors(config).items():
        stacked = None
        for i in range(config.n_layers):
            w = _to_ours(reader.get(f"model.layers.{i}.{suffix}"), kind, config)
            if config.scan_layers:
                if stacked is None:
                    stacked = np.empty((config.n_layers,) + w.shape, dtype)
                    _set(params, ("layers", "block") + path, stacked)
                stacked[i] = w
            else:
                _set(params, (f"layers_{i}",) + path, np.ascontiguousarray(w, dtype=dtype))
    params["final_norm"] = {"scale": reader.get(FINAL_NORM).astype(dtype)}
    if not config.tie_word_embeddings:  # tied: the head is `embed` itself, one parameter
        head = np.empty((config.d_model, config.vocab_size), dtype)
        head[:, :src_vocab] = reader.get(LM_HEAD).T
        _fill_pad_rows(head.T, src_vocab)
        params["lm_head"] = {"kernel": head}
    check_param_shapes(params, config, "imported params")  # guards against drift of the model's param tree
    return params, config


def _fill_pad_rows(table: np.ndarray, n_existing: int) -> None:
    """Set rows n_existing.. of `table [rows, embed]` (in place) to the mean of the rows before them."""
    if table.shape[0] > n_existing:
        table[n_existing:] = table[:n_existing].mean(axis=0, dtype=np.float64).astype(table.dtype)  # no fp64 copy


# ----------------------------------------------------------------------------- export


def _is_scanned(params: dict) -> bool:
    if "layers" in params:
        return True
    if "layers_0" in params:
        return False
    raise ValueError(f"params have neither 'layers' (scanned) nor 'layers_0' (unrolled): {sorted(params)}")


def hf_tensors(
    params: dict, config: LlamaConfig, *, vocab_size: int | None = None, dtype: str = "float32"
) -> Iterator[tuple[str, tuple[int, ...], np.dtype, Callable[[], np.ndarray]]]:
    """`(hf_name, shape, dtype, make_array)` for every HF tensor of `params`, without materialising.

    `params` is an unboxed param dict (numpy or single-host jax arrays), scanned or unrolled;
    `vocab_size` keeps only the first rows of embed/lm_head (drop pad rows).
    """
    if dtype not in EXPORT_DTYPES:
        raise ValueError(f"dtype={dtype!r}; expected one of {sorted(EXPORT_DTYPES)}")
    np_dtype = np.dtype(EXPORT_DTYPES[dtype])
    scanned = _is_scanned(params)
    v = vocab_size or config.vocab_size
    if v > config.vocab_size:
        raise ValueError(f"vocab_size={v} exceeds the model's {config.vocab_size} rows")
    shapes = hf_tensor_shapes(config, vocab_size=v)

    def entry(name, make):
        return name, shapes[name], np_dtype, lambda: np.asarray(make()).astype(np_dtype)

    def layer_param(path, i):
        return _get(params["layers"]["block"], path)[i] if scanned else _get(params[f"layers_{i}"], path)

    yield entry(EMBED, lambda: np.asarray(params["embed"])[:v])
    for i in range(config.n_layers):
        for suffix, (path, kind) in layer_tensors(config).items():
            yield entry(
                f"model.layers.{i}.{suffix}",
                lambda path=path, kind=kind, i=i: _to_hf(np.asarray(layer_param(path, i)), kind),
            )
    yield entry(FINAL_NORM, lambda: params["final_norm"]["scale"])
    if not config.tie_word_embeddings:  # tied: HF re-ties lm_head to the embedding on load
        yield entry(LM_HEAD, lambda: np.asarray(params["lm_head"]["kernel"])[:, :v].T)


def export_hf(
    params: dict,
    config: LlamaConfig,
    out_dir: str,
    *,
    vocab_size: int | None = None,
    dtype: str = "float32",
    max_shard_size: int | str = "5GB",
    base_hf_config: dict | None = None,
) -> None:
    """Write orca-jax `params` as a Hugging Face directory of the config's family.

    `out_dir` gets config.json and model.safetensors (or shards + model.safetensors.index.json
    past `max_shard_size`), loadable with `transformers.AutoModelForCausalLM.from_pretrained`
    (Llama/Mistral/Qwen2ForCausalLM). A tied config is written tied: no lm_head tensor.
    `vocab_size` drops trailing (pad) rows; `dtype` is the stored dtype (float32, bfloat16,
    float16); `base_hf_config` supplies non-architecture fields (token ids) for config.json.
    """
    check_param_shapes(params, config.replace(scan_layers=_is_scanned(params)))
    hf = hf_config_from_llama(config, vocab_size=vocab_size, dtype=dtype, base=base_hf_config)  # refuses first
    os.makedirs(out_dir, exist_ok=True)
    write_sharded(
        out_dir, hf_tensors(params, config, vocab_size=vocab_size, dtype=dtype), max_shard_size=max_shard_size
    )
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(hf, f, indent=2, sort_keys=True)
