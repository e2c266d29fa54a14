"""A fake OpenAI-compatible chat-completions server with fault injection, for tests and benchmarks.

It serves `POST /v1/chat/completions` on 127.0.0.1 (a free port) from an asyncio loop in a
background thread, with HTTP/1.1 keep-alive. Its answer to a query is deterministic and
starts with `[<digest>]`, the first 12 hex digits of sha256(system + "\\x00" + user), so a
test can check that every row carries the answer to *its* query (`expected_digest`).

Faults, chosen per query and attempt from a hash (so they are the same for every run):
for each of the first `max_faults_per_query` attempts of a query, the request fails with
probability `rate_429 + rate_500 + rate_timeout + rate_drop + rate_malformed`: a 429 with
`Retry-After`, a 500, a response delayed by `timeout_sleep_s` (longer than the client's
timeout), a connection closed without an answer, or a 200 whose body is truncated or
lacks `choices`. Markers in the user message force other outcomes: `[[LENGTH]]`
(finish_reason "length"), `[[CONTENT_FILTER]]` (finish_reason "content_filter"),
`[[BAD_REQUEST]]` (always 400), `[[FLAKY]]` (500 while `flaky` is on).

Run it by hand with `python -m orca_jax.testing.fake_teacher --port 8000 --latency 0.05`
(`--port 0` picks a free port; the first line printed gives the base URL).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

LENGTH_MARKER = "[[LENGTH]]"
CONTENT_FILTER_MARKER = "[[CONTENT_FILTER]]"
BAD_REQUEST_MARKER = "[[BAD_REQUEST]]"
FLAKY_MARKER = "[[FLAKY]]"


def expected_digest(system_prompt: str, question: str) -> str:
    """The tag the fake teacher puts at the start of its answer to this query."""
    return hashlib.sha256(f"{system_prompt}\x00{question}".encode()).hexdigest()[:12]


@dataclass
class FaultConfig:
    """Probabilities of each injected fault per attempt, for the first attempts of a query."""

    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_timeout: float = 0.0
    rate_drop: float = 0.0
    rate_malformed: float = 0.0
    max_faults_per_query: int = 2
    retry_after: str = "0.05"
    timeout_sleep_s: float = 1.0
    seed: int = 0


@dataclass
class FakeTeacherConfig:
    """Behaviour of the fake server."""

    latency_s: float = 0.0
    api_key: str | None = None
    model: str = "fake-teacher"
    faults: FaultConfig = field(default_factory=FaultConfig)
    echo_auth_in_errors: bool = False


class FakeTeacher:
    """The server; use as a context manager or call `start()` / `stop()`."""

    def __init__(self, config: FakeTeacherConfig | None = None, port: int = 0) -> None:
        self.config = config or FakeTeacherConfig()
        self.flaky = True
        self.port = port
        self.stats: Counter[str] = Counter()
        self.retry_gaps: list[float] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._attempts: defaultdict[str, int] = defaultdict(int)
        self._last_429: dict[str, float] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeTeacher:
        ready = threading.Event()
        loop = self._loop = asyncio.new_event_loop()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            self._server = loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", self.port, backlog=1024)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=serve, name="fake-teacher", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is None:
            return

        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(10)
        self._loop.close()
        self._loop = None

    def __enter__(self) -> FakeTeacher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- HTTP ---------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    break
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self._in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self._in_flight)
                try:
                    reply = await self._respond(request_line.decode("latin-1").split(), headers, body)
                finally:
                    self._in_flight -= 1
                if reply is None:  # dropped connection
                    writer.transport.abort()
                    return
                status, extra_headers, payload = reply
                head = [
                    f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
                    "Content-Type: application/json",
                    f"Content-Length: {len(payload)}",
                ]
                head += [f"{k}: {v}" for k, v in extra_headers.items()]
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _respond(
        self, request: list[str], headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes] | None:
        self.stats["requests"] += 1
        if len(request) < 2 or request[0] != "POST" or not request[1].rstrip("/").endswith("/chat/completions"):
            return 404, {}, _error("not found", "not_found")
        auth = headers.get("authorization", "")
        if self.config.api_key is not None and auth != f"Bearer {self.config.api_key}":
            self.stats["unauthorized"] += 1
            message = f"invalid key; you sent {auth!r}" if self.config.echo_auth_in_errors else "invalid key"
            return 401, {}, _error(message, "invalid_api_key")
        try:
            request_body = json.loads(body)
            messages = request_body["messages"]
        except (ValueError, KeyError, TypeError):
            return 400, {}, _error("bad JSON body", "invalid_request")
        system = next((m["content"] for m in messages if m.get("role") == "system"), "")
        user = next((m["content"] for m in messages if m.get("role") == "user"), "")
        key = expected_digest(system, user)
        attempt = self._attempts[key]
        self._attempts[key] += 1
        now = time.monotonic()
        if key in self._last_429:
            self.retry_gaps.append(now - self._last_429.pop(key))

        if BAD_REQUEST_MARKER in user:
            self.stats["bad_request"] += 1
            message = f"bad request (auth was {auth!r})" if self.config.echo_auth_in_errors else "bad request"
            return 400, {}, _error(message, "invalid_request")
        if FLAKY_MARKER in user and self.flaky:
            self.stats["flaky_500"] += 1
            return 500, {}, _error("flaky", "server_error")
        fault = self._fault(key, attempt)
        if fault:
            self.stats[f"fault_{fault}"] += 1
        if fault == "429":
            self._last_429[key] = now
            return 429, {"Retry-After": self.config.faults.retry_after}, _error("rate limited", "rate_limit_exceeded")
        if fault == "500":
            return 500, {}, _error("internal error", "server_error")
        if fault == "drop":
            return None
        if fault == "timeout":
            await asyncio.sleep(self.config.faults.timeout_sleep_s)
        if self.config.latency_s:
            await asyncio.sleep(self.config.latency_s)
        if fault == "malformed":
            broken = (
                b'{"id": "x", "choices": [{"message": {"content": "trunc'
                if attempt % 2 == 0
                else b'{"id": "x", "object": "chat.completion"}'
            )
            return 200, {}, broken
        self.stats["answered"] += 1
        return 200, {}, self._completion(system, user, key, request_body)

    def _fault(self, key: str, attempt: int) -> str | None:
        faults = self.config.faults
        if attempt >= faults.max_faults_per_query:
            return None
        digest = hashlib.sha256(f"{faults.seed}:{key}:{attempt}".encode()).digest()
        u = int.from_bytes(digest[:8], "big") / 2.0**64
        for name, rate in (
            ("429", faults.rate_429),
            ("500", faults.rate_500),
            ("timeout", faults.rate_timeout),
            ("drop", faults.rate_drop),
            ("malformed", faults.rate_malformed),
        ):
            if u < rate:
                return name
            u -= rate
        return None

    def _completion(self, system: str, user: str, key: str, request: dict[str, Any]) -> bytes:
        finish = "stop"
        content = f"[{key}] Let me explain step by step. The task asks: {user[:80]} So the answer follows."
        if LENGTH_MARKER in user:
            finish, content = "length", content[:40]
        elif CONTENT_FILTER_MARKER in user:
            finish, content = "content_filter", ""
        prompt_tokens = len(system.split()) + len(user.split())
        return json.dumps(
            {
                "id": f"chatcmpl-{key}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": request.get("model", self.config.model),
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": len(content.split()),
                    "total_tokens": prompt_tokens + len(content.split()),
                },
            }
        ).encode()


_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


def _error(message: str, code: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": code, "code": code}}).encode()


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--rate-429", type=float, default=0.0)
    parser.add_argument("--rate-500", type=float, default=0.0)
    parser.add_argument("--retry-after", default="0.05", help="Retry-After header of injected 429s")
    args = parser.parse_args(argv)
    faults = FaultConfig(rate_429=args.rate_429, rate_500=args.rate_500, retry_after=args.retry_after)
    config = FakeTeacherConfig(latency_s=args.latency, faults=faults)
    with FakeTeacher(config, port=args.port) as server:
        print(f"fake teacher at {server.base_url}", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
