"""Smoke test of benchmarks/train_throughput.py on CPU: the jax and torch rows, the ratio, the
peak table; --check_fused skips without a GPU; the packed batches both sides share."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "train_throughput.py"


def _env() -> dict[str, str]:
    """One CPU device (the conftest's 8 simulated devices would split batch 2 eight ways)."""
    env = dict(os.environ)
    env["XLA_FLAGS"] = " ".join(
        f for f in env.get("XLA_FLAGS", "").split() if not f.startswith("--xla_force_host_platform_device_count")
    )
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.slow
@pytest.mark.torch
def test_smoke_table_has_jax_torch_and_ratio():
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    result = _run(
        "--presets", "tiny", "--length", "128", "--batch", "2", "--steps", "2", "--warmup", "1", "--in_process"
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert re.search(r"^\s+h100\s+989\.0 TFLOP/s", out, re.M), out  # the peak table, at the top
    assert out.index("TFLOP/s") < out.index("framework")
    number = r"[\d,.]+"
    jax_row = re.search(rf"^tiny\s+jax\s+.*\s2x128\s+{number}\s+{number}\s+{number}\s+{number}\s+{number}", out, re.M)
    torch_row = re.search(
        rf"^tiny\s+torch\s+sdpa.*\s2x128\s+{number}\s+{number}\s+{number}\s+{number}\s+{number}", out, re.M
    )
    ratio = re.search(r"^tiny\s+ratio\s+jax/torch tokens/s = (\d+\.\d+)x", out, re.M)
    assert jax_row and torch_row and ratio, out
    assert float(ratio.group(1)) > 0
    assert "NOT LIKE-FOR-LIKE" not in out
    assert re.search(r"torch segment isolation check .* -> isolated", out), out
    assert "WARNING" not in out, out  # same batches and parameter counts on both sides


def test_check_fused_skips_on_cpu():
    result = _run("--check_fused", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"cuDNN fused attention is unavailable .*SKIP", result.stdout), result.stdout


def test_packed_batches_are_packed_contract_batches():
    from _torch_peer import torch_positions  # benchmarks/ is on pytest's pythonpath (pyproject.toml)
    from train_throughput import packed_batches

    batches = packed_batches(128, 4, 2, vocab_size=1024, seed=0)
    assert len(batches) == 2
    for b in batches:
        assert set(b) == {
            "decoder_input_tokens",
            "decoder_target_tokens",
            "decoder_loss_weights",
            "decoder_segment_ids",
            "decoder_positions",
        }
        assert all(v.shape == (4, 128) and v.dtype == np.int32 for v in b.values())
        assert b["decoder_segment_ids"].max(axis=1).mean() >= 2  # Orca-like: several examples per row
        pos = torch_positions(b["decoder_positions"], b["decoder_segment_ids"])
        for r in range(4):
            pad = b["decoder_segment_ids"][r] == 0
            np.testing.assert_array_equal(pos[r][~pad], b["decoder_positions"][r][~pad])
            np.testing.assert_array_equal(pos[r][pad], np.arange(pad.sum()))  # padding: one segment


@pytest.mark.torch
def test_torch_peer_computes_in_the_requested_dtype():
    """--dtype reaches the torch side: bf16 autocast for bfloat16, plain fp32 for float32."""
    torch = pytest.importorskip("torch")
    from _torch_peer import compute_context, precision_label

    cpu = torch.device("cpu")
    a = torch.ones(4, 4)
    for dtype, expected in (("bfloat16", torch.bfloat16), ("float32", torch.float32)):
        with compute_context(torch, dtype, cpu):
            assert (a @ a).dtype == expected, dtype
    assert precision_label("float32") == "fp32 master + fp32 compute (no autocast)"
    with pytest.raises(ValueError, match="float64"):
        compute_context(torch, "float64", cpu)


@pytest.mark.slow
@pytest.mark.torch
def test_smoke_float32_runs_both_sides_in_float32():
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    result = _run(
        "--presets",
        "tiny",
        "--length",
        "128",
        "--batch",
        "2",
        "--steps",
        "1",
        "--warmup",
        "1",
        "--in_process",
        "--dtype",
        "float32",
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert re.search(r"tiny jax: fp32 master \+ float32 compute;", out), out
    assert re.search(r"tiny torch: fp32 master \+ fp32 compute \(no autocast\);", out), out
    assert "torch segment isolation check (eager, fp32 compute (no autocast))" in out
    assert "WARNING" not in out, out  # same compute dtype, batches and parameter counts
