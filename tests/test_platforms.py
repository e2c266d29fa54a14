"""A CPU host with libtpu installed starts jax on the CPU without libtpu's failure-looking log."""

import os
import subprocess
import sys

import pytest

from orca_jax import _platforms

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAILURE_LINES = ("unexpected worker hostname", "Source Location Trace", "E0000")


def _bare_env() -> dict[str, str]:
    """The environment of a user's shell: no JAX_PLATFORMS, no TPU settings, no test flags."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("JAX_PLATFORMS", "XLA_FLAGS", "TPU_SKIP_MDS_QUERY", *_platforms._TPU_ENV)
    }
    env["PYTHONPATH"] = os.pathsep.join(p for p in [REPO, os.environ.get("PYTHONPATH")] if p)
    return env


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], env=_bare_env(), capture_output=True, text=True, timeout=120, cwd=REPO
    )


@pytest.mark.tpu
@pytest.mark.skipif(_platforms.tpu_chips_on_pci() > 0, reason="a TPU host: jax must use its TPU")
def test_import_on_a_cpu_host_with_libtpu_logs_no_failure():
    control = _run("import jax; print(jax.default_backend())")  # jax alone probes libtpu
    if not any(line in control.stderr for line in FAILURE_LINES):
        pytest.skip("this libtpu prints nothing on a CPU host: nothing to silence")
    result = _run("import orca_jax.models, jax; print(jax.default_backend())")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "cpu"
    for line in FAILURE_LINES:
        assert line not in result.stderr, result.stderr


def _pci(root, *devices):
    for i, (vendor, device) in enumerate(devices):
        d = root / f"0000:00:0{i}.0"
        d.mkdir(parents=True)
        (d / "vendor").write_text(vendor + "\n")
        (d / "device").write_text(device + "\n")
    return str(root)


@pytest.mark.tpu
def test_cpu_default_only_without_tpu_chips_or_user_settings(tmp_path, monkeypatch):
    monkeypatch.setattr(_platforms, "_NVIDIA_DEVICES", ())
    no_tpu = _pci(tmp_path / "cpu_host", ("0x8086", "0x1237"), ("0x1ae0", "0x0001"))  # a Google NIC, no TPU
    v5p = _pci(tmp_path / "tpu_vm", ("0x1ae0", "0x0062"), ("0x1ae0", "0x0062"))
    assert _platforms.tpu_chips_on_pci(no_tpu) == 0 and _platforms.tpu_chips_on_pci(v5p) == 2
    assert _platforms.should_default_to_cpu({}, no_tpu)
    assert not _platforms.should_default_to_cpu({}, v5p)  # a TPU VM keeps its TPU
    for env in (
        {"JAX_PLATFORMS": ""},
        {"JAX_PLATFORMS": "tpu"},
        {"TPU_ACCELERATOR_TYPE": "v5p-8"},
        {"JAX_FORCE_TPU_INIT": "1"},
    ):
        assert not _platforms.should_default_to_cpu(env, no_tpu), env


def test_cpu_default_leaves_gpu_hosts_alone(tmp_path, monkeypatch):
    gpu = tmp_path / "nvidia0"
    gpu.write_text("")
    monkeypatch.setattr(_platforms, "_NVIDIA_DEVICES", (str(gpu),))
    assert not _platforms.should_default_to_cpu({}, _pci(tmp_path / "pci"))
