"""Host feeding when make_mesh orders devices for the torus: a host's batch rows are several
blocks, not one contiguous range (v5p-128, v4-256)."""

import collections
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from orca_jax.training import feeding

from trainer_testlib import REPO, subprocess_env

FakeDevice = collections.namedtuple("FakeDevice", "id process_index")


class SimulatedHosts:
    """A sharding as a slice of `len(jax.devices()) // per_host` hosts sees it: device i is on host i // per_host."""

    def __init__(self, sharding, per_host):
        self.sharding, self.per_host = sharding, per_host

    def devices_indices_map(self, shape):
        return {
            FakeDevice(d.id, d.id // self.per_host): index
            for d, index in self.sharding.devices_indices_map(shape).items()
        }

    def addressable_devices_indices_map(self, shape):
        return {
            d: index for d, index in self.devices_indices_map(shape).items() if d.process_index == jax.process_index()
        }


def shards(device_ids, mesh_shape, batch=16, per_host=2):
    """host_data_shard as each of the 4 simulated hosts (2 devices each) computes it."""
    devices = {d.id: d for d in jax.devices()}
    mesh = Mesh(np.array([devices[i] for i in device_ids]).reshape(mesh_shape), ("data", "fsdp", "tensor"))
    sharding = SimulatedHosts(NamedSharding(mesh, PartitionSpec(("data", "fsdp"), None)), per_host)
    out = []
    for host in range(8 // per_host):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(jax, "process_index", lambda: host)
            out.append(feeding.host_data_shard(sharding, (batch, 64)))
    return out


def test_hosts_holding_several_row_blocks_get_disjoint_equal_shards():
    # FSDP over 8 devices, hosts interleaved: host 0 holds rows [0, 2) and [8, 10), host 1 [2, 4) and [10, 12)...
    assert shards((0, 2, 4, 6, 1, 3, 5, 7), (1, 8, 1)) == [(0, 4), (1, 4), (2, 4), (3, 4)]
    # Tensor pairs across hosts: hosts 0 and 1 both hold blocks [0, 4) and [4, 8), so they read the same shard.
    assert shards((0, 2, 1, 3, 4, 6, 5, 7), (1, 4, 2)) == [(0, 2), (0, 2), (1, 2), (1, 2)]
    # The contiguous layout numbers shards as before.
    assert shards(range(8), (1, 8, 1)) == [(0, 4), (1, 4), (2, 4), (3, 4)]


def test_overlapping_or_unequal_host_rows_are_rejected():
    # Host 0 holds block 0 only; hosts 1 and 2 both hold blocks 1 and 2.
    with pytest.raises(ValueError, match="not disjoint equal shards"):
        shards((0, 1, 2, 4, 3, 5, 6, 7), (1, 4, 2))


WORKER = r"""
import sys
import jax
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(sys.argv[1], 2, int(sys.argv[2]))
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from orca_jax.training.feeding import host_data_shard, to_global

devices = sorted(jax.devices(), key=lambda d: d.id)
assert [d.process_index for d in devices] == [0] * 4 + [1] * 4, devices
# Batch blocks of 2 rows alternate between the hosts: host 0 holds rows [0, 2) and [4, 6).
mesh = Mesh(np.array([devices[i] for i in (0, 1, 4, 5, 2, 3, 6, 7)]).reshape(1, 4, 2), ("data", "fsdp", "tensor"))
sharding = NamedSharding(mesh, PartitionSpec(("data", "fsdp"), None))
shard, count = host_data_shard(sharding, (8, 3))
pipeline = np.arange(24, dtype=np.int32).reshape(8, 3)  # the data source's global batch
share = 8 // count
batch = to_global({"x": pipeline[shard * share:(shard + 1) * share]}, sharding, 8)["x"]
expected = pipeline[[0, 1, 4, 5, 2, 3, 6, 7]]  # each host's share, in its row blocks' order
assert batch.shape == (8, 3) and batch.sharding == sharding
for s in batch.addressable_shards:
    np.testing.assert_array_equal(np.asarray(s.data), expected[s.index])
print("shard", shard, count, flush=True)
jax.distributed.shutdown()
"""


@pytest.mark.multiprocess
def test_two_processes_assemble_a_batch_from_interleaved_row_blocks():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"
    env = subprocess_env(XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, address, str(i)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for i, process in enumerate(processes):
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr[-5000:]
        assert stdout.split() == ["shard", str(i), "2"]
