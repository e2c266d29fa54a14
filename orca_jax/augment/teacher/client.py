"""Async client for any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, ...).

`TeacherClient.complete` sends one query and returns a `Completion` (possibly marked to be
kept apart) or a `Failure` with a reason; it retries with exponential backoff and jitter
on 429 (honouring Retry-After / retry-after-ms), 5xx, 408/409, timeouts and connection
errors, and a bounded number of times on malformed 200 bodies. 401, 403 and 404 mean the
endpoint, model or key is wrong for every query: they raise `FatalTeacherError`.

Circuit breaker: while no request has succeeded yet, `max_connection_errors` connection
errors in a row (refused, reset, DNS, connect timeout; counted over all concurrent
requests) also raise `FatalTeacherError`, naming the endpoint: an unreachable server
stops the run in seconds instead of costing every query its whole backoff. Once one
request has succeeded, connection errors are retried as usual (a server restarting).
`on_attempt_error(kind)` is called for every failed attempt, as it happens (progress).

Failure reasons: `rate_limited`, `server_error`, `timeout`, `connection_error`,
`malformed_response`, `http_<status>` (any other 4xx). The API key is read from the
environment variable named by `api_key_env`; it travels only in the Authorization header
and every error text is scrubbed (redaction.py).
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from orca_jax.augment.teacher.completion import (
    KEPT_CONTENT_FILTER,
    Completion,
    MalformedResponse,
    is_content_filter_error,
    parse_chat_completion,
)
from orca_jax.augment.teacher.pacing import BackoffPolicy, RateLimiter, parse_retry_after
from orca_jax.augment.teacher.redaction import Secret, describe_exception, scrub

RETRYABLE_STATUS = frozenset({408, 409})
# httpcore's pool scans every connection for every request (quadratic in pool size), so
# high concurrency is spread over several small pools, each request to the least busy.
CONNECTIONS_PER_POOL = 8
FATAL_STATUS = frozenset({401, 403, 404})
_DEFAULT_COMPLETION_ESTIMATE = 1024


class FatalTeacherError(RuntimeError):
    """The endpoint rejects every request (bad key, forbidden, wrong URL or model)."""


class MissingApiKey(RuntimeError):
    """The API key environment variable is not set."""


@dataclass(frozen=True)
class Failure:
    """A query that could not be answered, and why."""

    reason: str
    detail: str
    attempts: int
    status: int | None = None


@dataclass(frozen=True)
class TeacherConfig:
    """Endpoint, sampling parameters, limits and retry policy of the teacher."""

    base_url: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    use_auth: bool = True
    teacher_name: str | None = None
    max_tokens: int | None = 2048
    temperature: float | None = None
    timeout_s: float = 120.0
    connect_timeout_s: float = 10.0
    concurrency: int = 64
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    max_retries: int = 6
    max_rate_limit_retries: int = 20
    max_malformed_retries: int = 2
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    max_retry_after_s: float = 600.0
    max_connection_errors: int = 5  # with no success yet; 0 disables the circuit breaker

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.max_connection_errors < 0:
            raise ValueError("max_connection_errors must be >= 0 (0 disables the circuit breaker)")
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(scrub(f"base URL must start with http:// or https://, got {self.base_url!r}"))

    @property
    def name(self) -> str:
        """The teacher's name recorded in every row."""
        return self.teacher_name or self.model

    @property
    def backoff(self) -> BackoffPolicy:
        return BackoffPolicy(self.backoff_base_s, self.backoff_max_s, self.max_retry_after_s)

    def public_dict(self) -> dict[str, Any]:
        """Settings safe to save: the key's env var name, never its value."""
        data = asdict(self)
        data["base_url"] = scrub(self.base_url)
        return data


def load_api_key(config: TeacherConfig) -> Secret | None:
    """The key from the environment variable `config.api_key_env` (None without auth)."""
    if not config.use_auth:
        return None
    value = os.environ.get(config.api_key_env, "")
    if not value:
        raise MissingApiKey(
            f"environment variable {config.api_key_env} is not set (set it, name another with --api-key-env, or pass --no-auth)"
        )
    return Secret(value)


def _snippet(response: httpx.Response, limit: int = 300) -> str:
    text = response.content[:limit].decode("utf-8", errors="replace")
    return scrub(f"HTTP {response.status_code}: {text}")


class TeacherClient:
    """Shared HTTP connection pools; `complete` is safe to call from many tasks at once."""

    def __init__(
        self,
        config: TeacherConfig,
        api_key: Secret | None,
        limiter: RateLimiter | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
        on_attempt_error: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.successes = 0
        self.connection_errors_in_a_row = 0
        self._on_attempt_error = on_attempt_error
        self._api_key = api_key
        self.limiter = limiter or RateLimiter(config.requests_per_minute, config.tokens_per_minute)
        self._transport = transport
        self._rng = rng or random.Random()
        self._clients: list[httpx.AsyncClient] = []
        self._busy: list[int] = []

    def __repr__(self) -> str:
        return f"TeacherClient(base_url={scrub(self.config.base_url)!r}, model={self.config.model!r})"

    async def __aenter__(self) -> TeacherClient:
        headers = {"Content-Type": "application/json"}
        if self._api_key is not None:
            headers["Authorization"] = f"Bearer {self._api_key.reveal()}"
        pools = -(-self.config.concurrency // CONNECTIONS_PER_POOL)
        per_pool = -(-self.config.concurrency // pools)
        limits = httpx.Limits(max_connections=per_pool, max_keepalive_connections=per_pool)
        tls = httpx.create_ssl_context()  # one CA bundle load for all pools
        self._clients = [
            httpx.AsyncClient(
                base_url=self.config.base_url.rstrip("/") + "/",
                headers=headers,
                timeout=httpx.Timeout(self.config.timeout_s, connect=self.config.connect_timeout_s),
                limits=limits,
                verify=tls,
                transport=self._transport,
            )
            for _ in range(pools)
        ]
        self._busy = [0] * pools
        return self

    async def __aexit__(self, *exc: object) -> None:
        clients, self._clients = self._clients, []
        for client in clients:
            await client.aclose()

    async def _post(self, body: dict[str, Any]) -> httpx.Response:
        """POST to the least busy connection pool."""
        pool = min(range(len(self._clients)), key=self._busy.__getitem__)
        self._busy[pool] += 1
        try:
            return await self._clients[pool].post("chat/completions", json=body)
        finally:
            self._busy[pool] -= 1

    def _trip_if_unreachable(self, detail: str) -> None:
        """Raise FatalTeacherError after too many connection errors in a row with no success yet."""
        self.connection_errors_in_a_row += 1
        limit = self.config.max_connection_errors
        if limit and not self.successes and self.connection_errors_in_a_row >= limit:
            if self._on_attempt_error is not None:
                self._on_attempt_error("connection_error")
            raise FatalTeacherError(
                f"cannot reach the teacher endpoint {scrub(self.config.base_url)}: {self.connection_errors_in_a_row} "
                f"connection errors in a row and no successful request ({detail}); check --base-url and that the "
                "server is up (--max-connection-errors 0 disables this check)"
            )

    def payload(self, system_prompt: str, question: str) -> dict[str, Any]:
        """The request body; an empty system message (paper's #1) sends no system turn."""
        messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
        messages.append({"role": "user", "content": question})
        body: dict[str, Any] = {"model": self.config.model, "messages": messages}
        if self.config.max_tokens is not None:
            body["max_tokens"] = self.config.max_tokens
        if self.config.temperature is not None:
            body["temperature"] = self.config.temperature
        return body

    def _estimate_tokens(self, system_prompt: str, question: str) -> float:
        return (len(system_prompt) + len(question)) / 4.0 + (self.config.max_tokens or _DEFAULT_COMPLETION_ESTIMATE)

    async def complete(self, system_prompt: str, question: str) -> Completion | Failure:
        """Ask the teacher; retry transient errors; never raise except FatalTeacherError."""
        if not self._clients:
            raise RuntimeError("use `async with TeacherClient(...)`")
        cfg = self.config
        body = self.payload(system_prompt, question)
        estimate = self._estimate_tokens(system_prompt, question)
        attempts = retries = rate_limited = malformed = 0
        while True:
            await self.limiter.acquire(estimate)
            attempts += 1
            retry_after: float | None = None
            status: int | None = None
            try:
                response = await self._post(body)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                kind, detail = "connection_error", describe_exception(exc)
                self._trip_if_unreachable(detail)
            except httpx.TimeoutException as exc:
                kind, detail = "timeout", describe_exception(exc)
            except httpx.DecodingError as exc:  # a body that cannot be decoded is malformed
                kind, detail, malformed = "malformed_response", describe_exception(exc), malformed + 1
            except httpx.RequestError as exc:  # connection refused/reset/dropped, protocol errors
                kind, detail = "connection_error", describe_exception(exc)
            else:
                self.connection_errors_in_a_row = 0
                status = response.status_code
                if status == 200:
                    try:
                        completion = parse_chat_completion(response.content)
                    except MalformedResponse as exc:
                        kind, detail, malformed = "malformed_response", scrub(str(exc)), malformed + 1
                    else:
                        self.successes += 1
                        used = (completion.prompt_tokens or 0) + (completion.completion_tokens or 0)
                        self.limiter.settle(estimate, used if completion.completion_tokens is not None else None)
                        return completion
                elif status == 429:
                    kind, detail = "rate_limited", _snippet(response)
                    retry_after = parse_retry_after(response.headers)
                    if retry_after is not None:
                        self.limiter.pause(min(retry_after, cfg.max_retry_after_s))
                elif status >= 500 or status in RETRYABLE_STATUS:
                    kind, detail = "server_error", _snippet(response)
                    retry_after = parse_retry_after(response.headers)
                elif status in FATAL_STATUS:
                    raise FatalTeacherError(f"the teacher endpoint rejected the request: {_snippet(response)}")
                elif status == 400 and is_content_filter_error(response.content):
                    return Completion("", "content_filter", None, None, KEPT_CONTENT_FILTER)
                else:
                    return Failure(f"http_{status}", _snippet(response), attempts, status)
            if self._on_attempt_error is not None:
                self._on_attempt_error(kind)
            if kind == "rate_limited":
                rate_limited += 1
                exhausted = rate_limited > cfg.max_rate_limit_retries
            elif kind == "malformed_response":
                exhausted = malformed > cfg.max_malformed_retries
            else:
                retries += 1
                exhausted = retries > cfg.max_retries
            if exhausted:
                return Failure(kind, detail, attempts, status)
            await asyncio.sleep(cfg.backoff.delay(attempts - 1, retry_after, self._rng))
