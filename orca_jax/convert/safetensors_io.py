"""Read and write Hugging Face safetensors checkpoints tensor by tensor, with numpy only.

Reading is lazy: `HFCheckpointReader` knows every tensor's file, dtype and shape from the
file headers and loads one tensor when asked, so a converter holds at most one source tensor
at a time. Tensors in dtypes numpy understands come from `safe_open(..., framework="numpy")`;
numpy has no bfloat16 (or float8), and safetensors' numpy backend refuses them ("data type
'bfloat16' not understood"), so those are read as raw bytes at the offsets the header gives
and viewed as `ml_dtypes` arrays. The format is an 8-byte little-endian header length, a JSON
header `{name: {dtype, shape, data_offsets: [begin, end]}}` and the data, offsets counted from
the end of the header.

Writing (`write_sharded`) produces `model.safetensors`, or `model-0000k-of-0000n.safetensors`
shards plus `model.safetensors.index.json` when the tensors exceed `max_shard_size`, and
materialises one shard at a time.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable, Iterable, Mapping

import ml_dtypes
import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"

# Safetensors dtype names -> numpy dtypes. The ml_dtypes ones are read as raw bytes.
_NUMPY_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U64": np.uint64,
    "U32": np.uint32,
    "U16": np.uint16,
    "U8": np.uint8,
    "BOOL": np.bool_,
}
_RAW_DTYPES = {
    "BF16": ml_dtypes.bfloat16,
    "F8_E4M3": ml_dtypes.float8_e4m3fn,
    "F8_E5M2": ml_dtypes.float8_e5m2,
}


def read_header(path: str) -> tuple[dict, int]:
    """The JSON header of a safetensors file (without `__metadata__`) and where its data starts."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return header, 8 + n


class HFCheckpointReader:
    """Lazy reader of the safetensors in a Hugging Face model directory.

    Handles a single `model.safetensors` or shards listed in `model.safetensors.index.json`.
    `shape`/`dtype` read only headers; `get(name)` loads that one tensor into memory.
    """

    def __init__(self, hf_dir: str):
        self.hf_dir = hf_dir
        index_path = os.path.join(hf_dir, INDEX_FILE)
        if os.path.exists(index_path):
            with open(index_path) as f:
                weight_map = json.load(f)["weight_map"]
            files = sorted(set(weight_map.values()))
        elif os.path.exists(os.path.join(hf_dir, SINGLE_FILE)):
            weight_map, files = {}, [SINGLE_FILE]
        else:
            raise FileNotFoundError(
                f"{hf_dir} has neither {SINGLE_FILE} nor {INDEX_FILE}; only safetensors checkpoints "
                "are supported (re-save a PyTorch .bin checkpoint with save_pretrained(safe_serialization=True))"
            )
        self._entries: dict[str, tuple[str, dict, int]] = {}  # name -> (file path, header entry, data start)
        for fname in files:
            path = os.path.join(hf_dir, fname)
            header, data_start = read_header(path)
            for name, entry in header.items():
                self._entries[name] = (path, entry, data_start)
        missing = [n for n in weight_map if n not in self._entries]
        if missing:
            raise ValueError(f"{INDEX_FILE} lists tensors its shards lack: {missing[:5]}")

    def keys(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._entries[name][1]["shape"])

    def dtype(self, name: str) -> np.dtype:
        code = self._entries[name][1]["dtype"]
        if code in _NUMPY_DTYPES:
            return np.dtype(_NUMPY_DTYPES[code])
        if code in _RAW_DTYPES:
            return np.dtype(_RAW_DTYPES[code])
        raise TypeError(f"tensor {name} has unsupported safetensors dtype {code}")

    def get(self, name: str) -> np.ndarray:
        """Load tensor `name` as a numpy array in its stored dtype (bfloat16 as ml_dtypes.bfloat16)."""
        path, entry, data_start = self._entries[name]
        if entry["dtype"] in _NUMPY_DTYPES:
            with safe_open(path, framework="numpy") as f:
                return f.get_tensor(name)
        dtype = self.dtype(name)
        begin, end = entry["data_offsets"]
        count = (end - begin) // dtype.itemsize
        with open(path, "rb") as f:
            array = np.fromfile(f, dtype=dtype, count=count, offset=data_start + begin)
        return array.reshape(entry["shape"])


def parse_size(size: int | str) -> int:
    """Bytes from an int or a string like '5GB', '500MB', '2GiB' (decimal units as Hugging Face)."""
    if isinstance(size, int):
        return size
    s = size.strip().upper()
    units = {
        "KIB": 2**10,
        "MIB": 2**20,
        "GIB": 2**30,
        "TIB": 2**40,
        "KB": 10**3,
        "MB": 10**6,
        "GB": 10**9,
        "TB": 10**12,
        "B": 1,
    }
    for unit, factor in units.items():
        if s.endswith(unit):
            return int(float(s[: -len(unit)]) * factor)
    return int(s)


def write_sharded(
    out_dir: str,
    tensors: Iterable[tuple[str, tuple[int, ...], np.dtype, Callable[[], np.ndarray]]],
    max_shard_size: int | str = "5GB",
    metadata: Mapping[str, str] | None = None,
) -> list[str]:
    """Write `(name, shape, dtype, make_array)` tensors as safetensors shards under `out_dir`.

    Shards are planned from shapes first (greedy, in the given order), then written one at a
    time, calling `make_array` only for the shard being written. One shard -> `model.safetensors`;
    several -> `model-0000k-of-0000n.safetensors` and `model.safetensors.index.json`.
    Returns the file names written.
    """
    limit = parse_size(max_shard_size)
    metadata = {"format": "pt", **(metadata or {})}
    shards: list[list[tuple[str, Callable[[], np.ndarray]]]] = [[]]
    shard_bytes, total = 0, 0
    for name, shape, dtype, make in tensors:
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        if shards[-1] and shard_bytes + nbytes > limit:
            shards.append([])
            shard_bytes = 0
        shards[-1].append((name, make))
        shard_bytes += nbytes
        total += nbytes
    os.makedirs(out_dir, exist_ok=True)
    n = len(shards)
    names = [SINGLE_FILE] if n == 1 else [f"model-{k + 1:05d}-of-{n:05d}.safetensors" for k in range(n)]
    weight_map = {}
    for fname, shard in zip(names, shards):
        arrays = {name: np.ascontiguousarray(make()) for name, make in shard}
        save_file(arrays, os.path.join(out_dir, fname), metadata=dict(metadata))
        weight_map.update({name: fname for name in arrays})
        del arrays
    if n > 1:
        with open(os.path.join(out_dir, INDEX_FILE), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    return names
