"""Model families through the converter: Llama-2/Mistral (GQA, sliding window), Llama-3.x (llama3
RoPE, tied), Qwen2/2.5 (q/k/v biases, tied), SmolLM2-shaped (tied) -- fp32 logits vs transformers
on small random configurations, import and export; and the config features that are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from orca_jax.convert import UnsupportedConfigError, export_hf, import_hf, llama_config_from_hf  # noqa: E402
from orca_jax.convert.parity import hf_parity, random_hf_llama  # noqa: E402
from orca_jax.convert.safetensors_io import HFCheckpointReader  # noqa: E402

pytestmark = pytest.mark.torch

TOL = 1e-4
BASE = dict(
    vocab_size=97,
    hidden_size=32,
    intermediate_size=72,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
)
LLAMA3_ROPE = {
    "rope_type": "llama3",
    "rope_theta": 500000.0,
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 64,
}

FAMILIES = {
    # Llama-2 shape: GQA, untied, rms eps 1e-5.
    "llama2-gqa": (dict(BASE, rms_norm_eps=1e-5), None),
    # Mistral: GQA with a window of 5 slots over 16 tokens -> the window changes the logits.
    "mistral-window": (dict(BASE, model_type="mistral", sliding_window=5), {"sliding_window": None}),
    # Llama-3.2: llama3 RoPE (transformers-5 rope_parameters), tied as the 1B/3B models.
    "llama3-tied": (dict(BASE, rope_parameters=LLAMA3_ROPE, tie_word_embeddings=True), {"rope_type": "default"}),
    # Llama-3.1: the transformers-4 spelling, rope_theta + rope_scaling.
    "llama3-rope_scaling": (
        dict(BASE, rope_theta=500000.0, rope_scaling={k: v for k, v in LLAMA3_ROPE.items() if k != "rope_theta"}),
        {"rope_type": "default"},
    ),
    # Qwen2.5-0.5B shape: q/k/v biases, tied.
    "qwen2-bias-tied": (dict(BASE, model_type="qwen2", tie_word_embeddings=True, rope_theta=1e6), None),
    # SmolLM2: llama, GQA 3:1, tied.
    "smollm2-tied": (
        dict(
            BASE,
            num_attention_heads=6,
            num_key_value_heads=2,
            hidden_size=48,
            tie_word_embeddings=True,
            rope_theta=100000.0,
        ),
        None,
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FAMILIES))
def test_family_import_and_export_match_transformers(tmp_path, name):
    kwargs, ablate = FAMILIES[name]
    result = hf_parity(str(tmp_path), seq_len=16, seed=5, ablate=ablate, **kwargs)
    assert result["logit_scale"] > 0.5, result
    assert result["import"] < TOL and result["export"] < TOL, result
    assert result["params"] == result["hf_params"], result  # tied embeddings: one parameter
    if ablate:  # the feature is exercised: without it the logits are far off
        assert result["ablated"] > 100 * TOL, result
    exported = json.loads((tmp_path / "export" / "config.json").read_text())
    original = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert exported["model_type"] == original["model_type"]
    assert exported["tie_word_embeddings"] == original.get("tie_word_embeddings", False)


def test_tied_embedding_is_one_parameter_and_exports_tied(tmp_path):
    model = random_hf_llama(0, **dict(BASE, tie_word_embeddings=True))
    model.save_pretrained(tmp_path / "hf")
    params, config = import_hf(str(tmp_path / "hf"), add_pad_rows=3)
    assert config.tie_word_embeddings and "lm_head" not in params
    assert params["embed"].shape == (BASE["vocab_size"] + 3, BASE["hidden_size"])
    assert config.num_params() == sum(np.size(x) for x in __import__("jax").tree_util.tree_leaves(params))
    export_hf(params, config, str(tmp_path / "out"), vocab_size=BASE["vocab_size"])
    reader = HFCheckpointReader(str(tmp_path / "out"))
    assert "lm_head.weight" not in reader.keys()
    assert json.loads((tmp_path / "out" / "config.json").read_text())["tie_word_embeddings"] is True
    np.testing.assert_array_equal(
        reader.get("model.embed_tokens.weight"), model.model.embed_tokens.weight.detach().numpy()
    )


def test_qwen2_biases_land_on_q_k_v(tmp_path):
    model = random_hf_llama(1, "qwen2", **BASE)
    model.save_pretrained(tmp_path)
    params, config = import_hf(str(tmp_path), scan_layers=False)
    attn = params["layers_1"]["attention"]
    assert config.qkv_bias and config.family == "qwen2"
    np.testing.assert_array_equal(
        attn["k_bias"], model.model.layers[1].self_attn.k_proj.bias.detach().numpy().reshape(2, 8)
    )
    assert set(attn) == {"q_proj", "k_proj", "v_proj", "o_proj", "q_bias", "k_bias", "v_bias"}  # no o bias


def _hf(**changes) -> dict:
    return {
        "model_type": "llama",
        "vocab_size": 97,
        "hidden_size": 32,
        "intermediate_size": 72,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        **changes,
    }


@pytest.mark.parametrize(
    "changes,field",
    [
        (dict(model_type="gemma"), "model_type"),
        (dict(rope_scaling={"rope_type": "yarn", "factor": 4.0}), "rope_type"),
        (dict(rope_parameters={"rope_type": "linear", "rope_theta": 1e4, "factor": 2.0}), "rope_type"),
        (dict(rope_parameters={**LLAMA3_ROPE, "attention_factor": 2.0}), "attention_factor"),
        (dict(rope_scaling={"rope_type": "llama3", "factor": 8.0}), "low_freq_factor"),
        (dict(partial_rotary_factor=0.5), "partial_rotary_factor"),
        (dict(attention_bias=True), "attention_bias"),
        (dict(mlp_bias=True), "mlp_bias"),
        (dict(hidden_act="gelu"), "hidden_act"),
        (dict(model_type="qwen2", use_sliding_window=True, sliding_window=16), "use_sliding_window"),
        (dict(model_type="mistral", layer_types=["sliding_attention", "full_attention"]), "layer_types"),
    ],
    ids=lambda x: x if isinstance(x, str) else None,
)
def test_unsupported_config_fields_are_refused_by_name(changes, field):
    with pytest.raises(UnsupportedConfigError, match=field):
        llama_config_from_hf(_hf(**changes))


def test_supported_config_fields_are_read():
    cfg = llama_config_from_hf(_hf(model_type="mistral", sliding_window=4096, num_key_value_heads=2))
    assert (cfg.family, cfg.sliding_window, cfg.num_kv_heads, cfg.qkv_bias) == ("mistral", 4096, 2, False)
    cfg = llama_config_from_hf(_hf(rope_parameters=LLAMA3_ROPE, tie_word_embeddings=True))
    assert (cfg.rope_type, cfg.rope_factor, cfg.rope_original_max_len, cfg.rope_theta) == ("llama3", 8.0, 64, 5e5)
    assert cfg.tie_word_embeddings
    # Qwen2 configs carry a sliding_window that is off unless use_sliding_window is set.
    cfg = llama_config_from_hf(_hf(model_type="qwen2", use_sliding_window=False, sliding_window=4096))
    assert cfg.qkv_bias and cfg.sliding_window is None


def test_export_refuses_what_the_family_cannot_express(tmp_path):
    model = random_hf_llama(0, **BASE)
    model.save_pretrained(tmp_path / "hf")
    params, config = import_hf(str(tmp_path / "hf"))
    with pytest.raises(UnsupportedConfigError, match="sliding_window"):
        export_hf(params, config.replace(sliding_window=8), str(tmp_path / "out"))
