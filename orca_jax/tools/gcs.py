"""Small file helpers that work on `gs://` paths (google-cloud-storage) and local paths.

Every function dispatches on the `gs://` prefix: `gs://bucket/a/b` goes through
`google.cloud.storage` (imported lazily, on first use, with application-default
credentials), anything else through the local filesystem -- which is what the tests use.

    from orca_jax.tools import gcs
    gcs.write_text("gs://my-bucket/runs/x/launch/launch.json", text)
    gcs.read_text(path); gcs.exists(path); gcs.listdir(path); gcs.remove(path)
    gcs.upload_file("/tmp/worker-0.log", "gs://my-bucket/runs/x/logs/worker-0.log")
    for run in gcs.list_runs("gs://my-bucket/sweeps/lr"): print(run.summary())

GCS has no directories: a "directory" is a common prefix. `exists` is true for an object
or for a prefix with at least one object under it; `listdir` returns the immediate
children (objects and prefixes, without the trailing slash), sorted.

CLI (also used by the TPU VM workers to upload their logs and exit codes)::

    python -m orca_jax.tools.gcs list_runs gs://my-bucket/sweeps/lr      # run dirs + stage status
    python -m orca_jax.tools.gcs upload LOCAL_FILE gs://bucket/path
    python -m orca_jax.tools.gcs write gs://bucket/path TEXT
    python -m orca_jax.tools.gcs cat gs://bucket/path
    python -m orca_jax.tools.gcs ls gs://bucket/path
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
from typing import Any

GCS_PREFIX = "gs://"

_CLIENT: Any = None


def is_gcs(path: str) -> bool:
    return str(path).startswith(GCS_PREFIX)


def join(root: str, *parts: str) -> str:
    """Join path parts with '/' for gs:// paths, os.path.join otherwise."""
    if is_gcs(root):
        out = root.rstrip("/")
        for p in parts:
            out = f"{out}/{str(p).strip('/')}"
        return out
    return os.path.join(root, *parts)


def split_gcs(path: str) -> tuple[str, str]:
    """'gs://bucket/a/b' -> ('bucket', 'a/b')."""
    if not is_gcs(path):
        raise ValueError(f"not a gs:// path: {path!r}")
    rest = path[len(GCS_PREFIX) :]
    bucket, _, blob = rest.partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {path!r}")
    return bucket, blob


def _client():
    """The google.cloud.storage client, created on first use (tests replace it)."""
    global _CLIENT
    if _CLIENT is None:
        from google.cloud import storage  # lazy: importing it is slow and needs no network

        _CLIENT = storage.Client()
    return _CLIENT


def set_client(client: Any) -> None:
    """Use `client` for gs:// paths (tests pass a fake; None resets to the real one)."""
    global _CLIENT
    _CLIENT = client


def _blob(path: str):
    bucket, name = split_gcs(path)
    return _client().bucket(bucket).blob(name)


def _dir_prefix(path: str) -> tuple[str, str]:
    """(bucket, object-name prefix of gs:// `path` as a directory: "a/b/", or "" for the bucket)."""
    bucket, prefix = split_gcs(path)
    return bucket, prefix.rstrip("/") + "/" if prefix.strip("/") else ""


def _list(path: str, delimiter: str | None = "/") -> tuple[list[str], list[str]]:
    """(object names, prefixes) directly under gs:// `path` (treated as a directory)."""
    bucket, prefix = _dir_prefix(path)
    it = _client().list_blobs(bucket, prefix=prefix, delimiter=delimiter)
    names = [b.name for b in it]  # iterating fills it.prefixes page by page
    return names, sorted(getattr(it, "prefixes", ()) or ())


def exists(path: str) -> bool:
    if not is_gcs(path):
        return os.path.exists(path)
    if split_gcs(path)[1] and _blob(path).exists():
        return True
    bucket, prefix = _dir_prefix(path)
    return any(True for _ in _client().list_blobs(bucket, prefix=prefix, max_results=1))


def read_text(path: str) -> str:
    if not is_gcs(path):
        with open(path, encoding="utf-8") as f:
            return f.read()
    return _blob(path).download_as_text()


def write_text(path: str, text: str) -> None:
    """Write `text` to `path`, creating parent directories for local paths."""
    if not is_gcs(path):
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
        return
    _blob(path).upload_from_string(text, content_type="text/plain")


def upload_file(local_path: str, path: str) -> None:
    """Copy a local file to `path` (gs:// or local)."""
    if not is_gcs(path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        shutil.copyfile(local_path, path)
        return
    _blob(path).upload_from_filename(local_path)


def listdir(path: str) -> list[str]:
    """Names of the immediate children of a directory / prefix, sorted; [] if none."""
    if not is_gcs(path):
        return sorted(os.listdir(path)) if os.path.isdir(path) else []
    names, prefixes = _list(path)
    _, base = _dir_prefix(path)
    children = {n[len(base) :] for n in names if n[len(base) :]}
    children |= {p[len(base) :].rstrip("/") for p in prefixes}
    return sorted(c for c in children if c)


def isdir(path: str) -> bool:
    if not is_gcs(path):
        return os.path.isdir(path)
    names, prefixes = _list(path)
    return bool(names or prefixes)


def remove(path: str) -> None:
    """Delete one file/object if it exists (never a directory tree)."""
    if not is_gcs(path):
        if os.path.isfile(path):
            os.remove(path)
        return
    blob = _blob(path)
    if blob.exists():
        blob.delete()


@dataclasses.dataclass
class RunStatus:
    """One run directory: its stage directories and which of them have a DONE marker."""

    name: str
    path: str
    stages: dict[str, bool]  # stage dir name -> DONE exists
    exit_code: int | None = None  # worker 0's exit code written by the launcher, if any

    @property
    def done(self) -> bool:
        return bool(self.stages) and all(self.stages.values())

    def summary(self) -> str:
        stages = ", ".join(f"{s}:{'DONE' if d else 'running/incomplete'}" for s, d in self.stages.items())
        code = "" if self.exit_code is None else f"  exit={self.exit_code}"
        return f"{self.name:40s} {stages or 'no stage dirs'}{code}"


def list_runs(root: str) -> list[RunStatus]:
    """Run directories under `root` (a sweep root or a folder of runs) and their status.

    A run directory is a child of `root` that has `stage*` subdirectories (written by the
    trainer as MODEL_DIR/stage1, MODEL_DIR/stage2) or a `logs/` folder (written by the
    launcher). A stage is done when `<run>/<stage>/DONE` exists. `root` itself is reported
    when it is a run directory.
    """
    candidates = [(os.path.basename(root.rstrip("/")) or root, root)]
    candidates += [(name, join(root, name)) for name in listdir(root)]
    runs = []
    for name, path in candidates:
        children = listdir(path)
        stages = sorted(c for c in children if c.startswith("stage"))
        if not stages and "logs" not in children:
            continue
        exit_code = read_exit_code(path) if "logs" in children else None
        runs.append(RunStatus(name, path, {s: exists(join(path, s, "DONE")) for s in stages}, exit_code))
    return runs


def exit_code_path(run_dir: str) -> str:
    """Where the launcher's run script writes worker 0's exit code."""
    return join(run_dir, "logs", "worker-0.exit")


def read_exit_code(run_dir: str) -> int | None:
    """Worker 0's exit code under `run_dir`, or None (not written yet, or unreadable)."""
    path = exit_code_path(run_dir)
    try:
        return int(read_text(path).strip()) if exists(path) else None
    except (ValueError, OSError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orca_jax.tools.gcs", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list_runs").add_argument("root")
    up = sub.add_parser("upload")
    up.add_argument("local_path")
    up.add_argument("path")
    wr = sub.add_parser("write")
    wr.add_argument("path")
    wr.add_argument("text")
    sub.add_parser("cat").add_argument("path")
    sub.add_parser("ls").add_argument("path")
    args = parser.parse_args(argv)
    if args.cmd == "list_runs":
        runs = list_runs(args.root)
        for run in runs:
            print(run.summary())
        if not runs:
            print(f"no run directories under {args.root}")
    elif args.cmd == "upload":
        upload_file(args.local_path, args.path)
    elif args.cmd == "write":
        write_text(args.path, args.text)
    elif args.cmd == "cat":
        sys.stdout.write(read_text(args.path))
    elif args.cmd == "ls":
        for name in listdir(args.path):
            print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
