"""Run the teacher over the manifest's unfinished queries, resumably.

One producer streams the manifest and queues every query that is neither done nor (unless
retrying failures) failed; `concurrency` workers send them to the teacher; a flusher
group-commits results every `flush_interval_s` (store/output_writer.py) and updates progress.
The folder is locked for the run, and every output line is parsed in full first: torn
lines from a killed run and lines damaged anywhere are quarantined (store/state.py), so any
number of crashes and restarts end with exactly one result per query. An endpoint that
refuses every connection stops the run at once (teacher/client.py's circuit breaker).

SIGINT/SIGTERM stop the run cleanly: requests in flight are abandoned (they will be
asked again), everything finished is flushed, and the run returns `interrupted`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import httpx

from orca_jax.augment.store.layout import OutputLayout
from orca_jax.augment.store.manifest import ManifestEntry, load_meta
from orca_jax.augment.store.output_writer import FlushCounts, OutputWriter
from orca_jax.augment.store.run_config import next_recorded_run_index, record_run
from orca_jax.augment.store.state import OutputState, repair_outputs, scan_outputs
from orca_jax.augment.teacher.client import FatalTeacherError, TeacherClient, TeacherConfig
from orca_jax.augment.teacher.progress import Progress
from orca_jax.augment.teacher.redaction import Secret, scrub

log = logging.getLogger(__name__)

_ID_PREFIX = re.compile(rb'^\{"id": ?"([^"\\]+)"')


@dataclass(frozen=True)
class RunOptions:
    """What to do in this run, besides talking to the teacher."""

    retry_failures: bool = False
    limit: int | None = None
    shard_rows: int = 100_000
    flush_interval_s: float = 0.5
    progress_interval_s: float = 10.0
    use_tqdm: bool | None = None
    allow_teacher_change: bool = False
    price_prompt_per_1k: float | None = None  # recorded in run_config.json for reports
    price_completion_per_1k: float | None = None


@dataclass
class RunSummary:
    """What one run did."""

    queued: int
    written: FlushCounts
    already_done: int
    skipped_failed: int
    interrupted: bool = False
    fatal_error: str | None = None

    @property
    def ok(self) -> bool:
        return not self.interrupted and self.fatal_error is None


def _pending_entries(layout: OutputLayout, state: OutputState, retry_failures: bool) -> Iterator[ManifestEntry]:
    """Manifest entries still to ask; lines of finished ids are skipped without parsing."""

    def finished(row_id: str) -> bool:
        return state.is_done(row_id) or (not retry_failures and state.is_failed(row_id))

    with open(layout.manifest, "rb") as handle:
        for line in handle:
            match = _ID_PREFIX.match(line)
            if match and finished(match.group(1).decode()):
                continue
            entry = ManifestEntry.from_line(line)
            if match is None and finished(entry.id):
                continue
            yield entry


class _Run:
    """The tasks of one run: producer, workers, flusher."""

    def __init__(
        self,
        layout: OutputLayout,
        client: TeacherClient,
        writer: OutputWriter,
        state: OutputState,
        options: RunOptions,
        progress: Progress,
    ) -> None:
        self.layout = layout
        self.client = client
        self.writer = writer
        self.state = state
        self.options = options
        self.progress = progress
        self.queue: asyncio.Queue[ManifestEntry | None] = asyncio.Queue(maxsize=2 * client.config.concurrency)
        self.queued = 0
        self.written = FlushCounts()
        self.fatal_error: str | None = None

    async def produce(self) -> None:
        workers = self.client.config.concurrency
        for entry in _pending_entries(self.layout, self.state, self.options.retry_failures):
            if self.options.limit is not None and self.queued >= self.options.limit:
                break
            await self.queue.put(entry)
            self.queued += 1
        for _ in range(workers):
            await self.queue.put(None)

    async def work(self) -> None:
        while (entry := await self.queue.get()) is not None:
            try:
                outcome = await self.client.complete(entry.system_prompt, entry.question)
            except FatalTeacherError as exc:
                self.fatal_error = self.fatal_error or scrub(str(exc))
                raise
            self.writer.add(entry, outcome)

    async def flush(self) -> None:
        counts = await self.writer.flush()
        self.written.add(counts)
        self.progress.update(counts.total, counts.failures, counts.kept_apart)

    async def flush_periodically(self, stop: asyncio.Event) -> None:
        """Group-commit every `flush_interval_s` until `stop` (never cancelled mid-write)."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.options.flush_interval_s)
            await self.flush()

    async def run_workers(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.produce())
            for _ in range(self.client.config.concurrency):
                group.create_task(self.work())


def _install_signal_handlers(task: asyncio.Task) -> Callable[[], None]:
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, task.cancel)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
            pass

    def remove() -> None:
        for sig in installed:
            loop.remove_signal_handler(sig)

    return remove


async def run_async(
    layout: OutputLayout,
    config: TeacherConfig,
    api_key: Secret | None,
    options: RunOptions = RunOptions(),
    transport: httpx.AsyncBaseTransport | None = None,
) -> RunSummary:
    """Process the pending queries of `layout` (the folder must hold a manifest)."""
    with layout.lock():
        meta = load_meta(layout)
        state = scan_outputs(layout, meta, repair_outputs(layout))
        already_done, failed = state.done_count, state.failed_count
        skipped_failed = 0 if options.retry_failures else failed
        todo = meta.rows - already_done - skipped_failed
        if options.limit is not None:
            todo = min(todo, options.limit)
        log.info(
            "%d queries in the manifest: %d done, %d failed%s; %d to ask %s",
            meta.rows,
            already_done,
            failed,
            " (retrying them)" if options.retry_failures else " (skipped; --retry-failures retries them)",
            todo,
            config.name,
        )
        summary = RunSummary(queued=0, written=FlushCounts(), already_done=already_done, skipped_failed=skipped_failed)
        if todo <= 0:
            return summary
        run_index = max(layout.next_run_index(), next_recorded_run_index(layout))
        record_run(layout, config, run_index, asdict(options), options.allow_teacher_change)
        progress = Progress(todo, use_tqdm=options.use_tqdm, interval_s=options.progress_interval_s)
        writer = OutputWriter(layout, run_index, config.name, options.shard_rows)
        async with TeacherClient(
            config, api_key, transport=transport, on_attempt_error=progress.attempt_failed
        ) as client:
            job = _Run(layout, client, writer, state, options, progress)
            stop_flushing = asyncio.Event()
            flusher = asyncio.create_task(job.flush_periodically(stop_flushing))
            workers = asyncio.create_task(job.run_workers())
            remove_handlers = _install_signal_handlers(workers)
            try:
                await workers
            except BaseExceptionGroup:
                if job.fatal_error is None:
                    raise
                summary.fatal_error = job.fatal_error
                log.error("stopping: %s", summary.fatal_error)
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():  # the caller cancelled us
                    raise
                summary.interrupted = True
                log.warning("interrupted; finished rows are saved, the rest will be asked on the next run")
            finally:
                remove_handlers()
                stop_flushing.set()
                await flusher  # finishes its write in progress, then flushes the rest
                await job.flush()
                writer.close()
                progress.close()
        summary.queued = job.queued
        summary.written = job.written
        return summary


def run_augmentation(
    layout: OutputLayout,
    config: TeacherConfig,
    api_key: Secret | None,
    options: RunOptions = RunOptions(),
    transport: httpx.AsyncBaseTransport | None = None,
) -> RunSummary:
    """Synchronous entry point around `run_async`."""
    return asyncio.run(run_async(layout, config, api_key, options, transport))
