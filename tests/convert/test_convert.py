"""Hugging Face LLaMA <-> orca-jax conversion: logit parity with transformers, pad rows, shapes, CLI."""

from __future__ import annotations

import json
import os
import shutil

import jax
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import torch  # noqa: E402
import transformers  # noqa: E402

from orca_jax.convert import UnsupportedConfigError, export_hf, import_hf, llama_config_from_hf  # noqa: E402
from orca_jax.convert.__main__ import main  # noqa: E402
from orca_jax.convert.parity import hf_logits, hf_parity, orca_logits, random_hf_llama  # noqa: E402
from orca_jax.convert.safetensors_io import INDEX_FILE, HFCheckpointReader  # noqa: E402
from orca_jax.training import model_card  # noqa: E402
from orca_jax.training.checkpoints import (  # noqa: E402
    ShapeMismatchError,
    load_host_params,
    load_model_config,
    load_params,
    scan_layout,
)

pytestmark = pytest.mark.torch

TOL = 1e-4
MHA = dict(
    vocab_size=97,
    hidden_size=32,
    intermediate_size=72,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=64,
    rope_theta=500.0,
    rms_norm_eps=1e-6,
)
GQA = dict(MHA, num_key_value_heads=2, rope_theta=10000.0, rms_norm_eps=1e-5)


@pytest.fixture(scope="module")
def gqa_model(tmp_path_factory):
    """A random GQA HF model saved once for the tests that do not need their own."""
    model = random_hf_llama(1, **GQA)
    hf_dir = str(tmp_path_factory.mktemp("hf_gqa"))
    model.save_pretrained(hf_dir)
    tokens = np.random.default_rng(1).integers(0, GQA["vocab_size"], (2, 10))
    return model, hf_dir, tokens, hf_logits(model, tokens)


# ----------------------------------------------------------------------------- (a) parity


@pytest.mark.slow
@pytest.mark.parametrize(
    "kwargs,scan,shard",
    [(MHA, True, None), (MHA, False, None), (GQA, True, "30KB"), (GQA, False, None)],
    ids=["mha-scan", "mha-unrolled", "gqa-scan-sharded", "gqa-unrolled"],
)
def test_import_and_export_match_transformers(tmp_path, kwargs, scan, shard):
    result = hf_parity(str(tmp_path), scan_layers=scan, max_shard_size=shard, **kwargs)
    assert os.path.exists(tmp_path / "hf" / INDEX_FILE) == bool(shard)
    assert result["logit_scale"] > 0.5  # the comparison is not between near-zero logits
    assert result["import"] < TOL, result
    assert result["export"] < TOL, result


# ----------------------------------------------------------------------------- (d) other configurations


@pytest.mark.slow
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(
            vocab_size=131,
            hidden_size=48,
            intermediate_size=40,
            num_hidden_layers=3,
            num_attention_heads=6,
            num_key_value_heads=1,
            rope_theta=1e6,
            rms_norm_eps=1e-5,
        ),  # multi-query
        dict(
            vocab_size=64,
            hidden_size=32,
            intermediate_size=96,
            num_hidden_layers=1,
            num_attention_heads=2,
            head_dim=24,
            rope_theta=25000.0,
            rms_norm_eps=1e-4,
        ),  # head_dim != hidden/heads
        dict(
            vocab_size=100,
            hidden_size=40,
            intermediate_size=56,
            num_hidden_layers=2,
            num_attention_heads=8,
            num_key_value_heads=4,
            head_dim=6,
            tie_word_embeddings=True,
        ),  # tied, head_dim 6
    ],
    ids=["mqa-3layers", "head_dim24", "tied-gqa"],
)
def test_parity_on_other_llama_configs(tmp_path, kwargs):
    result = hf_parity(str(tmp_path), scan_layers=True, seed=3, max_position_embeddings=64, **kwargs)
    assert result["import"] < TOL and result["export"] < TOL, result


def test_scanned_and_unrolled_imports_agree(gqa_model):
    _, hf_dir, _, _ = gqa_model
    scanned, _ = import_hf(hf_dir, scan_layers=True)
    unrolled, _ = import_hf(hf_dir, scan_layers=False)
    jax.tree.map(np.testing.assert_array_equal, scan_layout(unrolled, True), scanned)
    jax.tree.map(np.testing.assert_array_equal, scan_layout(scanned, False), unrolled)


# ----------------------------------------------------------------------------- (b) pad rows


@pytest.mark.slow
def test_pad_rows_keep_existing_logits_and_export_drops_them(gqa_model, tmp_path):
    model, hf_dir, tokens, want = gqa_model
    v = GQA["vocab_size"]
    params, config = import_hf(hf_dir, add_pad_rows=2)
    assert config.vocab_size == v + 2
    embed, head = params["embed"], params["lm_head"]["kernel"]
    assert embed.shape == (v + 2, 32) and head.shape == (32, v + 2)
    np.testing.assert_allclose(embed[v:], np.broadcast_to(embed[:v].mean(0), (2, 32)), atol=1e-6)
    np.testing.assert_allclose(head[:, v:], np.broadcast_to(head[:, :v].mean(1)[:, None], (32, 2)), atol=1e-6)
    logits = orca_logits(params, config, tokens)
    assert logits.shape[-1] == v + 2
    np.testing.assert_allclose(logits[..., :v], want, atol=TOL)

    export_hf(params, config, str(tmp_path), vocab_size=v)
    exported = HFCheckpointReader(str(tmp_path))
    for name, tensor in model.state_dict().items():
        np.testing.assert_array_equal(exported.get(name), tensor.numpy(), err_msg=name)


# ----------------------------------------------------------------------------- bfloat16 checkpoints


def test_bfloat16_checkpoint_imports_exactly_and_exports_bf16(tmp_path):
    model = random_hf_llama(2, **GQA).to(torch.bfloat16)
    model.save_pretrained(tmp_path / "hf")
    reader = HFCheckpointReader(str(tmp_path / "hf"))
    assert reader.dtype("model.embed_tokens.weight").name == "bfloat16"
    params, config = import_hf(str(tmp_path / "hf"), scan_layers=False)
    q = model.model.layers[1].self_attn.q_proj.weight.detach().float().numpy()  # [heads * hd, embed]
    np.testing.assert_array_equal(params["layers_1"]["attention"]["q_proj"], q.T.reshape(32, 4, 8))
    np.testing.assert_array_equal(params["embed"], model.model.embed_tokens.weight.detach().float().numpy())

    export_hf(params, config, str(tmp_path / "out"), dtype="bfloat16")
    exported = HFCheckpointReader(str(tmp_path / "out"))
    for name, tensor in model.state_dict().items():
        got = exported.get(name)
        assert got.dtype.name == "bfloat16", name
        np.testing.assert_array_equal(got.astype(np.float32), tensor.float().numpy(), err_msg=name)
    assert json.loads((tmp_path / "out" / "config.json").read_text())["torch_dtype"] == "bfloat16"


# ----------------------------------------------------------------------------- (c) shape mismatches


def test_shape_mismatch_names_tensor_and_both_shapes(tmp_path, capsys):
    # Preset "tiny": vocab 1024, d_model 64, 2 layers, 4 heads, d_ff 176. This checkpoint has d_ff 128.
    tiny_but_mlp = dict(
        vocab_size=1024,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=256,
    )
    random_hf_llama(0, **tiny_but_mlp).save_pretrained(tmp_path / "hf")
    with pytest.raises(ShapeMismatchError, match=r"model\.layers\.0\.mlp\.gate_proj\.weight.*\(128, 64\).*\(176, 64\)"):
        import_hf(str(tmp_path / "hf"), preset="tiny")
    # Through the CLI: a clear message and exit status 2, no traceback.
    assert main(["import_hf", f"--hf_dir={tmp_path / 'hf'}", f"--out_dir={tmp_path / 'out'}", "--preset=tiny"]) == 2
    assert "gate_proj.weight" in capsys.readouterr().err


def test_vocab_mismatch_hints_at_pad_rows(gqa_model):
    _, hf_dir, _, _ = gqa_model
    from orca_jax.models import presets

    presets.PRESETS["_test_gqa"] = llama_config_from_hf(
        json.load(open(os.path.join(hf_dir, "config.json"))), vocab_size=GQA["vocab_size"] + 1
    )
    try:
        with pytest.raises(ShapeMismatchError, match=r"embed_tokens.*\(97, 32\).*\(98, 32\).*add_pad_rows=1"):
            import_hf(hf_dir, preset="_test_gqa")
        params, config = import_hf(hf_dir, preset="_test_gqa", add_pad_rows=1)
        assert params["embed"].shape == (98, 32)
    finally:
        del presets.PRESETS["_test_gqa"]


def test_missing_layers_are_reported(gqa_model):
    _, hf_dir, _, _ = gqa_model
    with pytest.raises(ShapeMismatchError, match=r"checkpoint has 2 layers.*expects 3.*model\.layers\.2\."):
        import_hf(hf_dir, config_overrides={"n_layers": 3})


# ----------------------------------------------------------------------------- unsupported configs


@pytest.mark.parametrize(
    "change,field",
    [
        ({"rope_scaling": {"type": "linear", "factor": 2.0}}, "rope_scaling"),
        ({"rope_parameters": {"rope_type": "llama3", "rope_theta": 5e5, "factor": 8.0}}, "llama3"),
        ({"attention_bias": True}, "attention_bias"),
        ({"mlp_bias": True}, "mlp_bias"),
        ({"hidden_act": "gelu"}, "hidden_act"),
    ],
)
def test_unsupported_hf_configs_are_refused(change, field):
    hf = dict(vocab_size=10, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)
    with pytest.raises(UnsupportedConfigError, match=field):
        llama_config_from_hf({**hf, **change})


def test_config_mapping_reads_transformers_4_and_5_rope_fields():
    hf = dict(
        vocab_size=32000,
        hidden_size=5120,
        num_hidden_layers=40,
        num_attention_heads=40,
        intermediate_size=13824,
        rms_norm_eps=1e-6,
        max_position_embeddings=2048,
    )
    v4 = llama_config_from_hf({**hf, "rope_theta": 1e4, "rope_scaling": None}, vocab_size=32001)
    v5 = llama_config_from_hf({**hf, "rope_parameters": {"rope_type": "default", "rope_theta": 1e4}}, vocab_size=32001)
    from orca_jax.models import get_preset

    assert v4 == v5 == get_preset("llama_13b")


# ----------------------------------------------------------------------------- CLI and on-disk layout


@pytest.mark.slow
def test_cli_import_save_load_and_export(gqa_model, tmp_path):
    _, hf_dir, tokens, want = gqa_model
    out, hf_out = str(tmp_path / "converted"), str(tmp_path / "hf_out")
    assert (
        main(
            [
                "import_hf",
                f"--hf_dir={hf_dir}",
                f"--out_dir={out}",
                "--no-scan_layers",
                "--add_pad_rows=1",
                "--template=instruct",
            ]
        )
        == 0
    )
    assert sorted(os.listdir(out)) == ["hf_config.json", "model_card.json", "model_config.json", "params"]

    params, config = load_host_params(out), load_model_config(out)
    assert not config.scan_layers and config.vocab_size == GQA["vocab_size"] + 1
    assert isinstance(params["embed"], np.ndarray)
    np.testing.assert_allclose(orca_logits(params, config, tokens)[..., :-1], want, atol=TOL)
    # The trainer's INIT_FROM path: placed on a device, shapes checked against the model first.
    restored = load_params(out, config)
    assert isinstance(restored["embed"], jax.Array)
    np.testing.assert_array_equal(restored["layers_1"]["mlp"]["down_proj"], params["layers_1"]["mlp"]["down_proj"])
    with pytest.raises(ShapeMismatchError, match=r"vocab_size=98 \(checkpoint\) vs 99 \(config\)"):
        load_params(out, config.replace(vocab_size=99))

    # Export from a trainer-style step dir: <run>/checkpoints/<step>/params, <run>/model_config.json and
    # model_card.json; the export gets a model card with the run's chat template.
    step_dir = tmp_path / "run" / "checkpoints" / "7"
    shutil.copytree(os.path.join(out, "params"), step_dir / "params")
    for name in ("model_config.json", "model_card.json"):
        shutil.copy(os.path.join(out, name), tmp_path / "run")
    assert (
        main(
            [
                "export_hf",
                f"--checkpoint={step_dir}",
                f"--out_dir={hf_out}",
                f"--vocab_size={GQA['vocab_size']}",
                "--max_shard_size=20KB",
            ]
        )
        == 0
    )
    assert os.path.exists(os.path.join(hf_out, INDEX_FILE))
    reloaded = transformers.LlamaForCausalLM.from_pretrained(hf_out, attn_implementation="eager").eval()
    np.testing.assert_allclose(hf_logits(reloaded, tokens), want, atol=TOL)
    card = model_card.load_card(hf_out)
    assert card["created_by"] == "orca_jax.convert export_hf" and card["chat_template"]["name"] == "instruct"
    assert card["model_config"]["vocab_size"] == GQA["vocab_size"] and card["tokenizer"] is None

    # Re-importing our export keeps its chat template without a --template flag.
    again = str(tmp_path / "again")
    assert main(["import_hf", f"--hf_dir={hf_out}", f"--out_dir={again}"]) == 0
    assert model_card.load_card(again)["chat_template"] == card["chat_template"]


def test_converter_does_not_import_torch_or_transformers():
    import subprocess
    import sys

    code = (
        "import sys, orca_jax.convert.__main__; bad = {'torch', 'transformers'} & set(sys.modules); assert not bad, bad"
    )
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=repo)
