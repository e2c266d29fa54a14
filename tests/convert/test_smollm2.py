"""A real pretrained student end to end through the converter: SmolLM2-135M-Instruct (fixture
`smollm2_hf_dir`, dequantized fp32) imported, compared with transformers on real text, exported and
reloaded by transformers. One import and one transformers model per module."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from orca_jax.convert import export_hf, import_hf  # noqa: E402
from orca_jax.convert.parity import hf_logits, orca_logits  # noqa: E402
from orca_jax.convert.safetensors_io import HFCheckpointReader  # noqa: E402

pytestmark = pytest.mark.torch

TEXTS = [
    "The capital of France is",
    'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n',
    "Question: If a train travels 60 miles in 1.5 hours, what is its average speed?\nAnswer:",
    "<|im_start|>user\nWrite a haiku about the sea.<|im_end|>\n<|im_start|>assistant\n",
]


@pytest.fixture(scope="module")
def smollm2(smollm2_hf_dir):
    """(hf_dir, our params, our config, transformers fp32 model, token rows, HF fp32 logits, HF fp64 logits)."""
    hf_dir = str(smollm2_hf_dir)
    tokenizer = transformers.AutoTokenizer.from_pretrained(hf_dir)
    rows = [tokenizer(t)["input_ids"] for t in TEXTS]
    length = max(map(len, rows))
    # Right padding: causal attention keeps the real positions independent of what follows them.
    tokens = np.array([r + [tokenizer.pad_token_id] * (length - len(r)) for r in rows])
    model = transformers.AutoModelForCausalLM.from_pretrained(
        hf_dir, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    want32 = hf_logits(model, tokens)
    want64 = hf_logits(model.double(), tokens)  # transformers' own fp32 error is measured against this
    model.float()
    params, config = import_hf(hf_dir)
    return hf_dir, params, config, model, rows, tokens, want32, want64


def _real(x: np.ndarray, rows) -> np.ndarray:
    """The logits at real (non-pad) positions, flattened `[tokens, vocab]`."""
    return np.concatenate([x[i, : len(r)] for i, r in enumerate(rows)])


def test_import_is_the_tied_135m_model(smollm2):
    hf_dir, params, config, model, *_ = smollm2
    assert config.tie_word_embeddings and "lm_head" not in params
    n = sum(np.size(x) for x in jax.tree_util.tree_leaves(params))
    assert n == config.num_params() == model.num_parameters() == 134_515_008


def test_logits_match_transformers_within_its_own_fp32_error(smollm2):
    _, params, config, _, rows, tokens, want32, want64 = smollm2
    ours = _real(orca_logits(params, config, tokens), rows)
    want32, want64 = _real(want32, rows), _real(want64, rows)
    scale = np.abs(want64).max()
    ours_err, hf_err = np.abs(ours - want64).max(), np.abs(want32 - want64).max()
    # Both fp32 models accumulate rounding over 30 layers differently (matmul blocking, RMSNorm and
    # softmax order); what is fair to ask is that ours is as close to the fp64 answer as transformers'
    # own fp32 forward is. Measured (docs/students.md): ours-fp64 1.3e-4, transformers fp32-fp64
    # 8.6e-5, ours-transformers 1.0e-4, for logits up to 39: ~3e-6 of the logit scale. The factor 3
    # leaves room for other CPUs' BLAS; a layout or RoPE bug gives differences of 1e-2 and more.
    assert ours_err <= 3 * hf_err, (ours_err, hf_err)
    assert np.abs(ours - want32).max() <= 1e-5 * scale, (np.abs(ours - want32).max(), scale)
    np.testing.assert_array_equal(ours.argmax(-1), want32.argmax(-1))


def test_export_round_trip_loads_tied_in_transformers(smollm2, tmp_path):
    hf_dir, params, config, model, rows, tokens, want32, _ = smollm2
    base = json.loads((__import__("pathlib").Path(hf_dir) / "config.json").read_text())
    export_hf(params, config, str(tmp_path), base_hf_config=base)
    exported = json.loads((tmp_path / "config.json").read_text())
    assert exported["tie_word_embeddings"] is True and exported["model_type"] == "llama"
    assert "lm_head.weight" not in HFCheckpointReader(str(tmp_path)).keys()
    reloaded, info = transformers.AutoModelForCausalLM.from_pretrained(
        str(tmp_path), dtype=torch.float32, attn_implementation="eager", output_loading_info=True
    )
    assert not any(info.values()), info
    assert reloaded.num_parameters() == model.num_parameters()
    # Same weights, same transformers: the logits are bit-identical.
    np.testing.assert_array_equal(_real(hf_logits(reloaded.eval(), tokens), rows), _real(want32, rows))
