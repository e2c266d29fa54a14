"""File access for local paths and URIs (gs://, s3://, file://) without TensorFlow.

Local paths use the standard library; anything with a scheme goes through
`pyarrow.fs` (its wheels ship a native GCS client, so gs:// works without
tf.io.gfile or google-cloud-storage). Every function here reads lazily: nothing
loads a whole file unless asked to (`read_bytes`).
"""

from __future__ import annotations

import fnmatch
import glob as _glob
import io
import os
import re
from typing import BinaryIO

_GLOB_CHARS = re.compile(r"[*?\[]")


def is_uri(path: str) -> bool:
    """True for 'scheme://...' paths (gs://, s3://, file://, ...)."""
    return "://" in path


def _filesystem(uri: str):
    """(pyarrow FileSystem, path inside it) for a URI."""
    import pyarrow.fs as pafs  # Lazy: evaluation imports this module without needing pyarrow.

    return pafs.FileSystem.from_uri(uri)


def _split_uri(uri: str) -> tuple[str, str]:
    """'gs://bucket/a/b' -> ('gs://', 'bucket/a/b'); 'file:///x' -> ('file://', '/x')."""
    scheme, rest = uri.split("://", 1)
    return scheme + "://", rest


def glob(pattern: str) -> list[str]:
    """Sorted paths matching a glob pattern (`*`, `?`, `[..]`, `**` for any depth).

    A pattern without glob characters matches itself if the file exists. URIs are
    listed with pyarrow.fs from the longest directory prefix without glob characters.
    Returns an empty list when nothing matches (callers decide whether that is an error).
    """
    if not is_uri(pattern):
        return sorted(p for p in _glob.glob(pattern, recursive=True) if os.path.isfile(p))
    import pyarrow.fs as pafs

    scheme, rest = _split_uri(pattern)
    fs, fs_pattern = _filesystem(pattern if not _GLOB_CHARS.search(pattern) else scheme + _static_prefix(rest))
    if not _GLOB_CHARS.search(rest):
        info = fs.get_file_info(fs_pattern)
        return [pattern] if info.type == pafs.FileType.File else []
    # fs_pattern is the static directory prefix as the filesystem names it; the
    # remainder of the pattern is matched component by component.
    prefix_in_uri = _static_prefix(rest)
    tail = rest[len(prefix_in_uri) :].lstrip("/")
    recursive = "**" in tail or "/" in tail
    selector = pafs.FileSelector(fs_pattern, recursive=recursive, allow_not_found=True)
    matches = []
    for info in fs.get_file_info(selector):
        if info.type != pafs.FileType.File:
            continue
        relative = info.path[len(fs_pattern) :].lstrip("/")
        if _match_components(relative, tail):
            matches.append(scheme + prefix_in_uri.rstrip("/") + "/" + relative)
    return sorted(matches)


def _static_prefix(path: str) -> str:
    """The directory part of `path` before its first glob character (with trailing '/')."""
    match = _GLOB_CHARS.search(path)
    head = path if match is None else path[: match.start()]
    return head[: head.rfind("/") + 1] if "/" in head else ""


def _match_components(relative: str, pattern: str) -> bool:
    """Glob match where `*` stays inside one path component and `**` spans any depth."""
    parts, pats = relative.split("/"), pattern.split("/")

    def match(i: int, j: int) -> bool:
        if j == len(pats):
            return i == len(parts)
        if pats[j] == "**":
            return any(match(k, j + 1) for k in range(i, len(parts) + 1))
        return i < len(parts) and fnmatch.fnmatchcase(parts[i], pats[j]) and match(i + 1, j + 1)

    return match(0, 0)


def expand_patterns(patterns: str | list[str] | tuple[str, ...]) -> list[str]:
    """Expand one or more glob patterns into a sorted, de-duplicated list of files.

    Raises:
      FileNotFoundError: naming the first pattern that matches no file.
    """
    if isinstance(patterns, str):
        patterns = [patterns]
    paths: list[str] = []
    for pattern in patterns:
        found = glob(pattern)
        if not found:
            raise FileNotFoundError(f"data source pattern {pattern!r} matches no file")
        paths.extend(found)
    return sorted(set(paths))


def file_size(path: str) -> int:
    """Size of a file in bytes."""
    if not is_uri(path):
        return os.path.getsize(path)
    fs, inner = _filesystem(path)
    return fs.get_file_info(inner).size


class _NativeFileReader(io.RawIOBase):
    """Adapts a pyarrow NativeFile (no readline) to io.RawIOBase for io.BufferedReader."""

    def __init__(self, native):
        self._native = native

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._native.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._native.seek(offset, whence)

    def tell(self) -> int:
        return self._native.tell()

    def close(self) -> None:
        self._native.close()
        super().close()


def open_input(path: str, buffer_size: int = 1 << 20) -> BinaryIO:
    """A seekable, buffered binary file object for a local path or URI."""
    if not is_uri(path):
        return open(path, "rb", buffering=buffer_size)
    fs, inner = _filesystem(path)
    return io.BufferedReader(_NativeFileReader(fs.open_input_file(inner)), buffer_size=buffer_size)


def read_bytes(path: str) -> bytes:
    """The whole content of a (small) file, e.g. a tokenizer model."""
    with open_input(path) as f:
        return f.read()


def parquet_source(path: str):
    """What pyarrow.parquet.ParquetFile should open: the local path, or a random-access remote file."""
    if not is_uri(path):
        return path
    fs, inner = _filesystem(path)
    return fs.open_input_file(inner)


def write_text(path: str, text: str) -> None:
    """Write a small text file (local: via a temporary file and rename, so readers never see half of it)."""
    data = text.encode("utf-8")
    if not is_uri(path):
        directory = os.path.dirname(path) or "."
        os.makedirs(directory, exist_ok=True)
        tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp-{os.getpid()}")
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        return
    fs, inner = _filesystem(path)
    with fs.open_output_stream(inner) as f:
        f.write(data)
