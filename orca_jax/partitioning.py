"""Device mesh, logical-axis rules and shardings (T5X's partitioner in spirit).

Mesh axes are ("data", "fsdp", "tensor"). Parameters and activations carry logical axis
names; one table of rules maps each logical name to mesh axes. `PartitioningConfig` (gin)
holds a run's mesh shape and rule overrides. Shape errors (a mesh that does not fit the
devices, a dimension its mesh axes do not divide) are raised here, before anything is compiled.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator, Sequence
from typing import Any

import flax.linen as nn
import gin
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "tensor")

Rules = tuple[tuple[str, Any], ...]

# logical name -> mesh axis (or tuple of axes, or None for replicated).
DEFAULT_RULES: Rules = (
    ("batch", ("data", "fsdp")),
    ("length", None),
    ("embed", "fsdp"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("mlp", "tensor"),
    ("vocab", "tensor"),
    ("head_dim", None),
    ("layers", None),
    ("norm", None),
    ("act_embed", None),
    ("act_heads", "tensor"),
    ("act_kv_heads", "tensor"),
    ("act_mlp", "tensor"),
    ("act_vocab", "tensor"),
)


@gin.configurable
@dataclasses.dataclass(frozen=True)
class PartitioningConfig:
    """How a run lays the model and the batch over the devices (gin: `PartitioningConfig.x`)."""

    mesh_shape: tuple[int, ...] = (1, -1, 1)
    """Devices along (data, fsdp, tensor); one -1 takes the rest of the devices."""
    rule_overrides: tuple[tuple[str, Any], ...] = ()
    """(logical name, mesh axes) pairs that replace DEFAULT_RULES entries."""

    def mesh(self, devices: Sequence[jax.Device] | None = None) -> Mesh:
        """The mesh over `devices` (default: all); a bad shape raises naming the gin binding."""
        try:
            return make_mesh(self.mesh_shape, devices)
        except ValueError as e:
            raise ValueError(f"PartitioningConfig.{e}") from None

    def rules(self) -> Rules:
        return logical_axis_rules(self.rule_overrides)


def logical_axis_rules(overrides: Sequence[tuple[str, Any]] = ()) -> Rules:
    """DEFAULT_RULES with `overrides` (pairs of logical name, mesh axes) replacing matching names."""
    table = dict(DEFAULT_RULES)
    for name, axes in overrides:
        table[name] = tuple(axes) if isinstance(axes, list) else axes
    return tuple(table.items())


def make_mesh(mesh_shape: Sequence[int] = (1, -1, 1), devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A Mesh over `devices` (default: all) with axes (data, fsdp, tensor); one -1 takes the rest."""
    devices = list(jax.devices() if devices is None else devices)
    shape = resolve_mesh_shape(mesh_shape, len(devices))
    try:
        from jax.experimental import mesh_utils

        device_grid = mesh_utils.create_device_mesh(shape, devices=devices, allow_split_physical_axes=True)
    except (ValueError, NotImplementedError, AssertionError):
        device_grid = np.asarray(devices).reshape(shape)
    return Mesh(device_grid, MESH_AXES)


def resolve_mesh_shape(mesh_shape: Sequence[int], num_devices: int) -> tuple[int, ...]:
    """Replace a single -1 with what is left of `num_devices`; check the product."""
    shape = tuple(int(s) for s in mesh_shape)
    if len(shape) != len(MESH_AXES):
        raise ValueError(f"mesh_shape={shape} must have {len(MESH_AXES)} entries for axes {MESH_AXES}")
    if shape.count(-1) > 1 or any(s == 0 or s < -1 for s in shape):
        raise ValueError(f"mesh_shape={shape}: use positive sizes and at most one -1")
    known = math.prod(s for s in shape if s != -1)
    if -1 in shape:
        if num_devices % known:
            raise ValueError(
                f"mesh_shape={shape} does not divide the {num_devices} devices: "
                f"the fixed axes need a multiple of {known}"
            )
        shape = tuple(num_devices // known if s == -1 else s for s in shape)
    if math.prod(shape) != num_devices:
        raise ValueError(f"mesh_shape={shape} has {math.prod(shape)} slots but there are {num_devices} devices")
    return shape


def mesh_axes_size(mesh: Mesh, axes: Any) -> int:
    """Number of devices along a mesh axis, tuple of axes, or None (1)."""
    if axes is None:
        return 1
    if isinstance(axes, str):
        return mesh.shape[axes]
    return math.prod(mesh.shape[a] for a in axes)


def logical_to_mesh_spec(logical: PartitionSpec | Sequence[str | None], rules: Rules) -> PartitionSpec:
    """Logical names -> a mesh PartitionSpec (a mesh axis is used at most once per array)."""
    return nn.logical_to_mesh_axes(tuple(logical), rules)


def check_divisible(shapes: Any, logical_specs: Any, mesh: Mesh, rules: Rules) -> None:
    """Raise naming the array, dimension and mesh axes if a sharded dim is not divisible."""
    flat_shapes = jax.tree_util.tree_flatten_with_path(shapes)[0]
    flat_specs = jax.tree_util.tree_leaves(logical_specs, is_leaf=lambda x: isinstance(x, PartitionSpec))
    for (path, shape), logical in zip(flat_shapes, flat_specs):
        dims = getattr(shape, "shape", shape)
        mesh_spec = logical_to_mesh_spec(logical, rules)
        for dim, (name, axes) in enumerate(zip(tuple(logical), tuple(mesh_spec))):
            size = mesh_axes_size(mesh, axes)
            if dims[dim] % size:
                raise ValueError(
                    f"{jax.tree_util.keystr(path)}: dimension {dim} ('{name}', size {dims[dim]}) is not "
                    f"divisible by mesh axes {axes} of size {size} (mesh {dict(mesh.shape)})"
                )


def params_shardings(abstract_variables: Any, mesh: Mesh, rules: Rules) -> Any:
    """NamedShardings for a (boxed, logically partitioned) variables tree; checks divisibility."""
    logical_specs = nn.get_partition_spec(abstract_variables)
    check_divisible(nn.unbox(abstract_variables), logical_specs, mesh, rules)
    return nn.logical_to_mesh_sharding(logical_specs, mesh, rules)


def batch_spec(rules: Rules) -> PartitionSpec:
    """Mesh spec of a `[batch, length]` array."""
    return logical_to_mesh_spec(("batch", "length"), rules)


def batch_sharding(mesh: Mesh, rules: Rules) -> NamedSharding:
    """Sharding of every `[batch, length]` array of the batch contract."""
    return NamedSharding(mesh, batch_spec(rules))


def check_batch_divisible(batch_size: int, mesh: Mesh, rules: Rules) -> None:
    """The global batch must divide over the batch's mesh axes (and so over hosts)."""
    axes = dict(rules).get("batch")
    size = mesh_axes_size(mesh, axes)
    if batch_size % size:
        raise ValueError(
            f"global batch size {batch_size} is not divisible by the batch mesh axes "
            f"{axes} of size {size} (mesh {dict(mesh.shape)})"
        )
    if batch_size % jax.process_count():
        raise ValueError(f"global batch size {batch_size} is not divisible by the {jax.process_count()} hosts")


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


@contextlib.contextmanager
def mesh_context(mesh: Mesh, rules: Rules) -> Iterator[None]:
    """Activate `mesh` and `rules` so that nn.with_logical_constraint shards activations."""
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
        yield
