"""One `Runner` abstraction through which the launcher and sweeps do every side effect.

* `SubprocessRunner` runs commands (gcloud, tar) and writes files for real.
* `DryRunRunner` runs nothing: it records each command (`.commands`, a list of argv lists)
  and each file it would write (`.files`), prints them readably, and answers queries
  (`gcloud ... describe`) with canned `CommandResult`s -- by default "not found", so that
  a dry run shows the create path. Tests assert on `.commands` exactly.

`sleep` is part of the runner so that the preemption watcher can be tested without waiting.
"""

from __future__ import annotations

import dataclasses
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import TextIO

from orca_jax.tools import gcs


@dataclasses.dataclass
class CommandResult:
    returncode: int = 0
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class CommandError(RuntimeError):
    def __init__(self, argv: Sequence[str], result: CommandResult):
        super().__init__(f"command failed ({result.returncode}): {shlex.join(argv)}\n{result.stderr.strip()}")
        self.argv = list(argv)
        self.result = result


class Runner:
    """Interface: run a command, write a file, sleep, say something."""

    dry_run = False

    def run(self, argv: Sequence[str], *, check: bool = True, query: bool = False) -> CommandResult:
        """Run `argv`. `query=True` marks read-only commands whose output is parsed."""
        raise NotImplementedError

    def write_file(self, path: str, text: str) -> None:
        """Write a local or gs:// file."""
        raise NotImplementedError

    def remove_file(self, path: str) -> None:
        """Delete a local or gs:// file if it exists."""
        raise NotImplementedError

    def sleep(self, seconds: float) -> None:
        raise NotImplementedError

    def note(self, message: str) -> None:
        """A human-readable progress line (a comment in dry-run output)."""
        raise NotImplementedError


class SubprocessRunner(Runner):
    def __init__(self, stream: TextIO | None = None, echo: bool = True):
        self.stream = stream or sys.stderr
        self.echo = echo

    def run(self, argv, *, check=True, query=False):
        argv = [str(a) for a in argv]
        if self.echo and not query:
            print(f"+ {shlex.join(argv)}", file=self.stream, flush=True)
        proc = subprocess.run(argv, capture_output=query, text=True)
        result = CommandResult(proc.returncode, proc.stdout or "", proc.stderr or "")
        if check and not result.ok:
            raise CommandError(argv, result)
        return result

    def write_file(self, path, text):
        gcs.write_text(path, text)

    def remove_file(self, path):
        gcs.remove(path)

    def sleep(self, seconds):
        time.sleep(seconds)

    def note(self, message):
        print(f"[launch] {message}", file=self.stream, flush=True)


Responder = Callable[[list[str]], "CommandResult | None"]


class DryRunRunner(Runner):
    """Records and prints; runs nothing.

    `responses`: list of (argv prefix, CommandResult) -- the first entry whose prefix
    matches a command answers it (entries may also be callables argv -> result or None).
    Unmatched queries answer `default_query_result` (returncode 1: "not found").
    """

    dry_run = True

    def __init__(
        self,
        stream: TextIO | None = None,
        responses: Sequence[tuple[Sequence[str], CommandResult] | Responder] = (),
        default_query_result: CommandResult | None = None,
        print_files: bool = True,
    ):
        self.stream = stream if stream is not None else sys.stdout
        self.responses = list(responses)
        self.default_query_result = default_query_result or CommandResult(1, "", "NOT_FOUND (dry run)")
        self.print_files = print_files
        self.commands: list[list[str]] = []
        self.files: dict[str, str] = {}
        self.sleeps: list[float] = []
        self.notes: list[str] = []
        self.removed: list[str] = []

    def _respond(self, argv: list[str]) -> CommandResult | None:
        for entry in self.responses:
            if callable(entry):
                result = entry(argv)
                if result is not None:
                    return result
                continue
            prefix, result = entry
            if argv[: len(prefix)] == list(prefix):
                return result
        return None

    def run(self, argv, *, check=True, query=False):
        argv = [str(a) for a in argv]
        self.commands.append(argv)
        print(shlex.join(argv), file=self.stream)
        result = self._respond(argv)
        if result is None:
            result = self.default_query_result if query else CommandResult(0)
        if check and not result.ok:
            raise CommandError(argv, result)
        return result

    def write_file(self, path, text):
        unchanged = self.files.get(path) == text
        same = next((p for p, t in self.files.items() if t == text and p != path), None)
        self.files[path] = text
        if unchanged:
            print(f"# would write {path} (unchanged)", file=self.stream)
        elif same is not None:
            print(f"# would write {path} (same content as {same})", file=self.stream)
        elif self.print_files:
            body = text if text.endswith("\n") else text + "\n"
            print(f"# --- would write {path} ---\n{body}# --- end of {path} ---", file=self.stream)
        else:
            print(f"# would write {path} ({len(text)} bytes)", file=self.stream)

    def remove_file(self, path):
        self.removed.append(path)
        print(f"# would remove {path}", file=self.stream)

    def sleep(self, seconds):
        self.sleeps.append(seconds)

    def note(self, message):
        self.notes.append(message)
        print(f"# {message}", file=self.stream)
