"""The TPU slice table (orca_jax/tools/topologies.py)."""

import json
import math
import os
import subprocess
import sys

import pytest

from orca_jax.tools import topologies as T

GiB = 1024**3
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize(
    "name, accel, family, chips, hosts, per_host, topo, runtime",
    [
        ("v4-8", "v4-8", "v4", 4, 1, 4, "v4:2x2x1", "tpu-ubuntu2204-base"),
        ("v4-16", "v4-16", "v4", 8, 2, 4, "v4:2x2x2", "tpu-ubuntu2204-base"),
        ("v4-256", "v4-256", "v4", 128, 32, 4, "v4:4x4x8", "tpu-ubuntu2204-base"),
        ("v5p-8", "v5p-8", "v5p", 4, 1, 4, "v5p:2x2x1", "v2-alpha-tpuv5"),
        ("v5p-128", "v5p-128", "v5p", 64, 16, 4, "v5p:4x4x4", "v2-alpha-tpuv5"),
        ("v5p-768", "v5p-768", "v5p", 384, 96, 4, "v5p:4x8x12", "v2-alpha-tpuv5"),
        ("v5p-1024", "v5p-1024", "v5p", 512, 128, 4, "v5p:8x8x8", "v2-alpha-tpuv5"),
        ("v5litepod-1", "v5litepod-1", "v5e", 1, 1, 1, "v5e:1x1", "v2-alpha-tpuv5-lite"),
        ("v5litepod-4", "v5litepod-4", "v5e", 4, 1, 4, "v5e:2x2", "v2-alpha-tpuv5-lite"),
        ("v5litepod-8", "v5litepod-8", "v5e", 8, 1, 8, "v5e:2x4", "v2-alpha-tpuv5-lite"),
        ("v5e-16", "v5litepod-16", "v5e", 16, 4, 4, "v5e:4x4", "v2-alpha-tpuv5-lite"),
        ("v5litepod-256", "v5litepod-256", "v5e", 256, 64, 4, "v5e:16x16", "v2-alpha-tpuv5-lite"),
        ("v6e-8", "v6e-8", "v6e", 8, 1, 8, "v6e:2x4", "v2-alpha-tpuv6e"),
        ("v6e-64", "v6e-64", "v6e", 64, 16, 4, "v6e:8x8", "v2-alpha-tpuv6e"),
        ("v6e-256", "v6e-256", "v6e", 256, 64, 4, "v6e:16x16", "v2-alpha-tpuv6e"),
    ],
)
def test_table(name, accel, family, chips, hosts, per_host, topo, runtime):
    t = T.get_topology(name)
    assert (t.accelerator, t.family, t.num_chips, t.num_hosts, t.chips_per_host) == (
        accel,
        family,
        chips,
        hosts,
        per_host,
    )
    assert (t.topology_name, t.runtime_version, t.num_devices) == (topo, runtime, chips)


def test_memory_and_flops():
    v5p = T.get_topology("v5p-128")
    assert v5p.hbm_bytes_per_chip == 95 * GiB and v5p.total_hbm_bytes == 64 * 95 * GiB
    assert v5p.peak_bf16_flops_per_chip == 459e12 and v5p.peak_bf16_flops == 64 * 459e12
    assert T.get_topology("v4-8").hbm_bytes_per_chip == 32 * GiB
    assert T.get_topology("v4-8").peak_bf16_flops_per_chip == 275e12
    assert T.get_topology("v5e-16").hbm_bytes_per_chip == 16 * GiB
    assert T.get_topology("v5e-16").peak_bf16_flops_per_chip == 197e12
    assert T.get_topology("v6e-16").hbm_bytes_per_chip == 32 * GiB
    assert T.get_topology("v6e-16").peak_bf16_flops_per_chip == 918e12


def test_topology_desc_kwargs():
    assert T.topology_desc_kwargs("v5p-128") == dict(
        topology_name="v5p:4x4x4",
        platform="tpu",
        chip_config_name="megacore",
        chips_per_host_bounds=(2, 2, 1),
        num_slices=1,
        wrap=(True, True, True),
    )
    assert T.topology_desc_kwargs("v4-32", num_slices=2) == dict(
        topology_name="v4:2x2x4",
        platform="tpu",
        chip_config_name="megacore",
        chips_per_host_bounds=(2, 2, 1),
        num_slices=2,
        wrap=(False, False, False),
    )
    assert T.topology_desc_kwargs("v5litepod-256")["wrap"] == (True, True, False)
    assert T.topology_desc_kwargs("v6e-128")["wrap"] == (False, True, False)
    assert T.topology_desc_kwargs("v6e-8")["chips_per_host_bounds"] == (2, 4, 1)
    assert T.topology_desc_kwargs("v6e-8")["chip_config_name"] == "default"


def test_every_known_slice_is_consistent():
    names = T.known_accelerators()
    assert {"v4-8", "v5p-128", "v5litepod-256", "v6e-256"} <= set(names)
    for name in names:
        t = T.get_topology(name)
        assert math.prod(t.shape) == t.num_chips, name
        assert t.num_hosts * t.chips_per_host == t.num_chips, name
        assert math.prod(t.chips_per_host_bounds) == t.chips_per_host, name
        assert t.topology_name.split(":")[1] == "x".join(map(str, t.shape)), name
        assert T.get_topology(t.accelerator) == t  # canonical names round-trip


@pytest.mark.parametrize("bad", ["v3-8", "tpu-128", "v5p", "128", "", "v7-8", "a100-8"])
def test_unknown_accelerator_names_the_flag(bad):
    with pytest.raises(ValueError, match=r"--accelerator=.*unknown TPU accelerator"):
        T.get_topology(bad)


@pytest.mark.parametrize("bad", ["v5p-100", "v5p-7", "v4-96", "v5e-2", "v5litepod-512", "v6e-12"])
def test_invalid_sizes(bad):
    with pytest.raises(ValueError, match=r"--accelerator=.*no slice of that size"):
        T.get_topology(bad)


def test_custom_flag_name_in_error():
    with pytest.raises(ValueError, match=r"^--topology='v9-8'"):
        T.get_topology("v9-8", flag="--topology")


def test_table_cli():
    assert "v5p:4x4x4" in T.table_markdown(["v5p-128"])
    assert T.main(["v5p-100"]) == 2


@pytest.mark.tpu
def test_libtpu_agrees_with_the_table():
    """With libtpu, get_topology_desc yields the table's device and host counts."""
    names = ["v4-8", "v4-256", "v5p-8", "v5p-128", "v5litepod-8", "v5litepod-256", "v6e-8", "v6e-256"]
    code = (
        "import json, sys\n"
        "from orca_jax.tools import topologies as T\n"
        "out = {}\n"
        f"for n in {names!r}:\n"
        "    d = T.get_topology_desc(n).devices\n"
        "    out[n] = [len(d), len({x.process_index for x in d})]\n"
        "print(json.dumps(out))\n"
    )
    env = dict(os.environ, TPU_SKIP_MDS_QUERY="1", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    for n in names:
        t = T.get_topology(n)
        assert got[n] == [t.num_devices, t.num_hosts], n
