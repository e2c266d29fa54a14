"""TPU slice table: accelerator name -> chips, hosts, memory, FLOPs and AOT topology.

One module that the TPU VM launcher (`launch.py`) and the AOT compile tool both read, so
that "v5p-128" means the same thing everywhere.

Naming (what the number in a Cloud TPU accelerator type counts):

* v4-N, v5p-N: N counts TensorCores, 2 per chip, so v5p-128 = 64 chips. JAX sees one
  device per chip (megacore). Every VM host has 4 chips (a 2x2x1 block), so v5p-128 has
  16 hosts. Slices are 3D tori: 4, 8, 16, 32 chips (2x2x1 .. 2x4x4), then any AxBxC with
  A, B, C multiples of 4 (v5p-128 = 4x4x4, v4-256 = 4x4x8).
* v5e-N / v5litepod-N, v6e-N: N counts chips (one TensorCore each). Slices of 1, 4 and
  8 chips are one host (1, 4 or 8 chips on it); larger slices (16 .. 256 chips) have 4
  chips per host, so v5litepod-256 = 256 chips = 64 hosts. Slices are 2D: 16x16 etc.
  `v5e-N` is accepted as an alias; the gcloud accelerator type is `v5litepod-N`.

| family | name counts | chips/host | HBM/chip | peak bf16/chip | runtime version      | AOT name  | chip_config |
|--------|-------------|------------|----------|----------------|----------------------|-----------|-------------|
| v4     | TensorCores | 4          | 32 GiB   | 275 TFLOP/s    | tpu-ubuntu2204-base  | v4:AxBxC  | megacore    |
| v5p    | TensorCores | 4          | 95 GiB   | 459 TFLOP/s    | v2-alpha-tpuv5       | v5p:AxBxC | megacore    |
| v5e    | chips       | 4 (1/4/8 single host) | 16 GiB | 197 TFLOP/s | v2-alpha-tpuv5-lite | v5e:AxB   | default     |
| v6e    | chips       | 4 (1/4/8 single host) | 32 GiB | 918 TFLOP/s | v2-alpha-tpuv6e     | v6e:AxB   | default     |

Examples (see `python -m orca_jax.tools.topologies` for any name):

| accelerator    | chips | hosts | chips/host | AOT topology_name | jax devices |
|----------------|-------|-------|------------|-------------------|-------------|
| v4-8           | 4     | 1     | 4          | v4:2x2x1          | 4           |
| v4-256         | 128   | 32    | 4          | v4:4x4x8          | 128         |
| v5p-8          | 4     | 1     | 4          | v5p:2x2x1         | 4           |
| v5p-128        | 64    | 16    | 4          | v5p:4x4x4         | 64          |
| v5p-1024       | 512   | 128   | 4          | v5p:8x8x8         | 512         |
| v5litepod-8    | 8     | 1     | 8          | v5e:2x4           | 8           |
| v5litepod-256  | 256   | 64    | 4          | v5e:16x16         | 256         |
| v6e-256        | 256   | 64    | 4          | v6e:16x16         | 256         |

AOT compilation on a CPU machine (needs libtpu, i.e. `pip install -e ".[tpu]"`)::

    from orca_jax.tools import topologies
    devices = topologies.get_topology_desc("v5p-128").devices   # 64 compile-only devices
    # == jax.experimental.topologies.get_topology_desc(
    #        topology_name="v5p:4x4x4", platform="tpu", chip_config_name="megacore",
    #        chips_per_host_bounds=(2, 2, 1), num_slices=1, wrap=(True, True, True))

The topology kwargs follow MaxText's `accelerator_to_spec_map.py` and were checked against
libtpu 0.0.42.1 (the libtpu of jax 0.10.2): every family/size above yields the listed
number of devices and `hosts` distinct process indices. libtpu also accepts MaxText's
`v5:AxBxC` for v5p; it rejects `v5litepod:` (use `v5e:`).
"""

from __future__ import annotations

import dataclasses
import re
import sys
from typing import Any

from orca_jax.training.flops import match_peak

GiB = 1024**3

ACCELERATOR_FLAG = "--accelerator"


@dataclasses.dataclass(frozen=True)
class Family:
    """What all slices of one TPU generation share."""

    name: str  # canonical family name: v4, v5p, v5e, v6e
    gcloud_prefix: str  # prefix of the gcloud --accelerator-type (v5litepod for v5e)
    runtime_version: str  # default TPU VM software version (`--version` of tpu-vm create)
    cores_per_chip: int  # TensorCores per chip; 2 = megacore (one jax device per chip)
    name_counts_cores: bool  # True: the N in NAME-N counts TensorCores, else chips
    hbm_bytes_per_chip: int
    peak_bf16_flops_per_chip: float
    topology_prefix: str  # prefix of the AOT topology_name ("v5p" in "v5p:4x4x4")
    chip_config_name: str  # get_topology_desc chip_config_name
    dims: int  # 3 (3D torus) or 2 (2D)
    max_chips: int


def _peak(family: str) -> float:
    """Peak bf16 FLOP/s per chip, from the one table in orca_jax/training/flops.py."""
    return match_peak(family)[1]


FAMILIES: dict[str, Family] = {
    "v4": Family("v4", "v4", "tpu-ubuntu2204-base", 2, True, 32 * GiB, _peak("v4"), "v4", "megacore", 3, 4096),
    "v5p": Family("v5p", "v5p", "v2-alpha-tpuv5", 2, True, 95 * GiB, _peak("v5p"), "v5p", "megacore", 3, 8960),
    "v5e": Family(
        "v5e", "v5litepod", "v2-alpha-tpuv5-lite", 1, False, 16 * GiB, _peak("v5e"), "v5e", "default", 2, 256
    ),
    "v6e": Family("v6e", "v6e", "v2-alpha-tpuv6e", 1, False, 32 * GiB, _peak("v6e"), "v6e", "default", 2, 256),
}

# Accepted spellings of the family part of a name -> canonical family.
FAMILY_ALIASES = {"v4": "v4", "v5p": "v5p", "v5e": "v5e", "v5litepod": "v5e", "v6e": "v6e"}

# 2D slices (v5e/v6e): chips -> (x, y), as Cloud TPU lays them out.
_SHAPES_2D = {1: (1, 1), 4: (2, 2), 8: (2, 4), 16: (4, 4), 32: (4, 8), 64: (8, 8), 128: (8, 16), 256: (16, 16)}
# 3D slices under one full 4x4x4 cube (v4/v5p).
_SMALL_SHAPES_3D = {4: (2, 2, 1), 8: (2, 2, 2), 16: (2, 2, 4), 32: (2, 4, 4)}


@dataclasses.dataclass(frozen=True)
class Topology:
    """One slice type, e.g. v5p-128."""

    accelerator: str  # canonical gcloud accelerator type, e.g. "v5p-128", "v5litepod-16"
    family: str  # v4, v5p, v5e, v6e
    num_chips: int
    num_hosts: int
    chips_per_host: int
    num_devices: int  # jax devices in the slice (one per chip: megacore on v4/v5p)
    shape: tuple[int, ...]  # chip grid, 3D for v4/v5p, 2D for v5e/v6e
    hbm_bytes_per_chip: int
    peak_bf16_flops_per_chip: float
    runtime_version: str
    topology_name: str  # get_topology_desc(topology_name=...), e.g. "v5p:4x4x4"
    chip_config_name: str
    chips_per_host_bounds: tuple[int, int, int]
    wrap: tuple[bool, bool, bool]

    @property
    def total_hbm_bytes(self) -> int:
        return self.hbm_bytes_per_chip * self.num_chips

    @property
    def peak_bf16_flops(self) -> float:
        return self.peak_bf16_flops_per_chip * self.num_chips

    @property
    def multi_host(self) -> bool:
        return self.num_hosts > 1

    def topology_desc_kwargs(self, num_slices: int = 1) -> dict[str, Any]:
        """Keyword arguments of `jax.experimental.topologies.get_topology_desc`."""
        return dict(
            topology_name=self.topology_name,
            platform="tpu",
            chip_config_name=self.chip_config_name,
            chips_per_host_bounds=self.chips_per_host_bounds,
            num_slices=num_slices,
            wrap=self.wrap,
        )


def _shape_3d(chips: int) -> tuple[int, int, int] | None:
    """The Cloud TPU v4/v5p slice shape for a chip count, or None if there is none.

    Under 64 chips: 2x2x1 .. 2x4x4. From 64: dims multiples of 4, the most cube-like
    (smallest largest side, then largest smallest side), ascending -- what Cloud TPU's
    default topologies and MaxText's table use (v5p-768 = 4x8x12, v5p-6912 = 12x12x24).
    """
    if chips in _SMALL_SHAPES_3D:
        return _SMALL_SHAPES_3D[chips]
    if chips < 64 or chips % 64:
        return None
    best = None
    for a in range(4, chips + 1, 4):
        if a**3 > chips:
            break
        for b in range(a, chips // a + 1, 4):
            if chips % (a * b):
                continue
            c = chips // (a * b)
            if c < b or c % 4:
                continue
            key = (c, -a)
            if best is None or key < best[0]:
                best = (key, (a, b, c))
    return None if best is None else best[1]


def _parse(accelerator: str, flag: str) -> tuple[Family, int]:
    m = re.fullmatch(r"\s*([a-z0-9]+)-(\d+)\s*", str(accelerator).lower())
    family = FAMILIES.get(FAMILY_ALIASES.get(m.group(1), "")) if m else None
    if family is None:
        raise ValueError(
            f"{flag}={accelerator!r}: unknown TPU accelerator; expected one of "
            "v4-N, v5p-N (N = TensorCores, e.g. v5p-128), v5e-N / v5litepod-N or v6e-N "
            "(N = chips, e.g. v5litepod-256)"
        )
    return family, int(m.group(2))


def get_topology(accelerator: str, *, flag: str = ACCELERATOR_FLAG) -> Topology:
    """The `Topology` of an accelerator name; ValueError naming `flag` if it is unknown."""
    family, n = _parse(accelerator, flag)
    if family.name_counts_cores:
        chips = n // family.cores_per_chip if n % family.cores_per_chip == 0 else 0
        shape = _shape_3d(chips) if 0 < chips <= family.max_chips else None
        sizes = "8, 16, 32, 64, then multiples of 128 that form an AxBxC torus (A, B, C multiples of 4)"
    else:
        chips = n
        shape = _SHAPES_2D.get(chips) if chips <= family.max_chips else None
        sizes = ", ".join(str(c) for c in _SHAPES_2D)
    if shape is None:
        raise ValueError(
            f"{flag}={accelerator!r}: {family.name} has no slice of that size; "
            f"valid sizes of {family.gcloud_prefix}-N: N in {sizes}"
        )
    if family.dims == 3:
        chips_per_host_bounds = (2, 2, 1) if chips >= 4 else (1, 1, 1)
        # Full 4x4x4 cubes and larger have wrap-around links (a torus) in every dimension.
        wrap = (True, True, True) if chips >= 64 else (False, False, False)
        name = f"{family.topology_prefix}:" + "x".join(map(str, shape))
    else:
        chips_per_host_bounds = {1: (1, 1, 1), 4: (2, 2, 1), 8: (2, 4, 1)}.get(chips, (2, 2, 1))
        # A full 16-chip row/column wraps around: 8x16 wraps in y, 16x16 in x and y.
        wrap = (shape[0] == 16, shape[1] == 16, False)
        name = f"{family.topology_prefix}:{shape[0]}x{shape[1]}"
    chips_per_host = chips_per_host_bounds[0] * chips_per_host_bounds[1] * chips_per_host_bounds[2]
    return Topology(
        accelerator=f"{family.gcloud_prefix}-{n}",
        family=family.name,
        num_chips=chips,
        num_hosts=chips // chips_per_host,
        chips_per_host=chips_per_host,
        num_devices=chips,
        shape=tuple(shape),
        hbm_bytes_per_chip=family.hbm_bytes_per_chip,
        peak_bf16_flops_per_chip=family.peak_bf16_flops_per_chip,
        runtime_version=family.runtime_version,
        topology_name=name,
        chip_config_name=family.chip_config_name,
        chips_per_host_bounds=chips_per_host_bounds,
        wrap=wrap,
    )


def topology_desc_kwargs(accelerator: str, num_slices: int = 1) -> dict[str, Any]:
    return get_topology(accelerator).topology_desc_kwargs(num_slices)


def get_topology_desc(accelerator: str, num_slices: int = 1):
    """Compile-only TPU devices of a slice (needs libtpu; works on a CPU-only machine)."""
    from jax.experimental import topologies as jax_topologies  # lazy: keep this module jax-free

    return jax_topologies.get_topology_desc(**topology_desc_kwargs(accelerator, num_slices))


def known_accelerators(family: str | None = None) -> list[str]:
    """Canonical names of the common slices of a family (all families if None)."""
    names = []
    for fam in FAMILIES.values():
        if family is not None and fam.name != FAMILY_ALIASES.get(family, family):
            continue
        if fam.name_counts_cores:
            chip_counts = [4, 8, 16, 32] + [64 * 2**k for k in range(8) if 64 * 2**k <= fam.max_chips]
            names += [f"{fam.gcloud_prefix}-{c * fam.cores_per_chip}" for c in chip_counts]
        else:
            names += [f"{fam.gcloud_prefix}-{c}" for c in _SHAPES_2D]
    return names


def table_markdown(accelerators: list[str] | None = None) -> str:
    rows = [
        "| accelerator | family | chips | hosts | chips/host | HBM/chip (GiB) | peak bf16 PFLOP/s | runtime | topology_name | chip_config | chips_per_host_bounds | wrap |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in accelerators or known_accelerators():
        t = get_topology(name)
        rows.append(
            f"| {t.accelerator} | {t.family} | {t.num_chips} | {t.num_hosts} | {t.chips_per_host} | "
            f"{t.hbm_bytes_per_chip / GiB:g} | {t.peak_bf16_flops / 1e15:g} | {t.runtime_version} | "
            f"{t.topology_name} | {t.chip_config_name} | {t.chips_per_host_bounds} | {t.wrap} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    """`python -m orca_jax.tools.topologies [NAME ...]`: print the table."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        print(table_markdown(argv or None))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
