"""The teacher client against the fake OpenAI-compatible server, fault by fault."""

from __future__ import annotations

import asyncio
import email.utils
import random
import socket
import time

import pytest

from orca_jax.augment.teacher.client import Failure, FatalTeacherError, MissingApiKey, TeacherClient, load_api_key
from orca_jax.augment.teacher.completion import MalformedResponse, parse_chat_completion
from orca_jax.augment.teacher.pacing import BackoffPolicy, TokenBucket, parse_retry_after
from orca_jax.augment.teacher.redaction import Secret
from orca_jax.testing.fake_teacher import (
    BAD_REQUEST_MARKER,
    CONTENT_FILTER_MARKER,
    FLAKY_MARKER,
    LENGTH_MARKER,
    FaultConfig,
    expected_digest,
)

SYSTEM = "You are an AI assistant that helps people find information."


async def _ask(config, questions, key):
    async with TeacherClient(config, Secret(key), rng=random.Random(0)) as client:
        return await asyncio.gather(*(client.complete(SYSTEM, q) for q in questions))


@pytest.fixture
def ask(api_key):
    """`ask(config, questions, key=None)`: the client's results for each question."""

    def run(config, questions, key=None):
        return asyncio.run(_ask(config, questions, key or api_key))

    return run


def _questions(n, tag=""):
    return [f"Question {i}{tag}: why is the sky blue?" for i in range(n)]


def test_answers_match_their_queries(ask, fake_teacher, teacher_config):
    server = fake_teacher(latency_s=0.01)
    questions = _questions(40)
    results = ask(teacher_config(server.base_url), questions)
    for q, r in zip(questions, results):
        assert r.for_training and r.finish_reason == "stop"
        assert r.content.startswith(f"[{expected_digest(SYSTEM, q)}]")
        assert r.prompt_tokens > 0 and r.completion_tokens > 0
    assert server.max_in_flight > 1  # concurrent


def test_429_retry_after_is_honoured(ask, fake_teacher, teacher_config):
    server = fake_teacher(faults=FaultConfig(rate_429=1.0, max_faults_per_query=1, retry_after="0.3"))
    results = ask(teacher_config(server.base_url), _questions(8))
    assert all(r.for_training for r in results)
    assert server.stats["fault_429"] == 8 and len(server.retry_gaps) == 8
    assert min(server.retry_gaps) >= 0.3  # the backoff (10-50 ms) alone would come back sooner


def test_rate_limit_exhausted_is_a_failure(ask, fake_teacher, teacher_config):
    server = fake_teacher(faults=FaultConfig(rate_429=1.0, max_faults_per_query=99, retry_after="0"))
    (result,) = ask(teacher_config(server.base_url, max_rate_limit_retries=2), _questions(1))
    assert isinstance(result, Failure) and result.reason == "rate_limited" and result.attempts == 3


@pytest.mark.parametrize("fault", ["500", "timeout", "drop"])
def test_transient_faults_are_retried(ask, fake_teacher, teacher_config, fault):
    rates = {"500": "rate_500", "timeout": "rate_timeout", "drop": "rate_drop"}
    server = fake_teacher(faults=FaultConfig(**{rates[fault]: 1.0}, max_faults_per_query=2, timeout_sleep_s=1.0))
    results = ask(teacher_config(server.base_url, timeout_s=0.25), _questions(6))
    assert all(r.for_training for r in results)
    assert server.stats[f"fault_{fault}"] == 12


def test_retries_exhausted_by_reason(ask, fake_teacher, teacher_config):
    server = fake_teacher(faults=FaultConfig(rate_timeout=1.0, max_faults_per_query=99, timeout_sleep_s=1.0))
    (timeout,) = ask(teacher_config(server.base_url, timeout_s=0.15, max_retries=1), _questions(1))
    assert isinstance(timeout, Failure) and timeout.reason == "timeout" and timeout.attempts == 2
    (flaky,) = ask(teacher_config(server.base_url, max_retries=2), _questions(1, FLAKY_MARKER))
    assert isinstance(flaky, Failure) and flaky.reason == "server_error" and flaky.status == 500 and flaky.attempts == 3


def test_connection_refused_is_a_connection_error(ask, teacher_config):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    (result,) = ask(teacher_config(f"http://127.0.0.1:{port}/v1", max_retries=1), _questions(1))
    assert isinstance(result, Failure) and result.reason == "connection_error" and result.attempts == 2


def _refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def test_unreachable_endpoint_trips_the_circuit_breaker(ask, teacher_config, api_key):
    url = _refused_url()
    config = teacher_config(
        url, max_retries=50, backoff_base_s=0.01, backoff_max_s=0.02, max_connection_errors=4, concurrency=2
    )
    start = time.monotonic()
    with pytest.raises(FatalTeacherError) as caught:
        ask(config, _questions(3))
    assert time.monotonic() - start < 5  # 50 retries per query would not stop for long
    message = str(caught.value)
    assert url in message and "4 connection errors in a row" in message and api_key not in message


def test_circuit_breaker_is_off_once_a_request_succeeded(fake_teacher, teacher_config, api_key):
    server = fake_teacher()
    config = teacher_config(server.base_url, max_retries=5, max_connection_errors=2)
    kinds: list[str] = []

    async def scenario():
        async with TeacherClient(config, Secret(api_key), on_attempt_error=kinds.append) as client:
            first = await client.complete(SYSTEM, "Question: up?")
            server.stop()  # the server goes away after a success: retried, not fatal
            second = await client.complete(SYSTEM, "Question: down?")
            return first, second, client.successes

    first, second, successes = asyncio.run(scenario())
    assert first.for_training and successes == 1
    assert isinstance(second, Failure) and second.reason == "connection_error" and second.attempts == 6
    assert kinds == ["connection_error"] * 6  # every failed attempt reported as it happens


def test_malformed_json_is_retried_a_bounded_number_of_times(ask, fake_teacher, teacher_config):
    server = fake_teacher(faults=FaultConfig(rate_malformed=1.0, max_faults_per_query=2))
    results = ask(teacher_config(server.base_url, max_malformed_retries=2), _questions(4))
    assert all(r.for_training for r in results)  # third attempt is fine
    server = fake_teacher(faults=FaultConfig(rate_malformed=1.0, max_faults_per_query=99))
    (result,) = ask(teacher_config(server.base_url, max_malformed_retries=2), _questions(1))
    assert isinstance(result, Failure) and result.reason == "malformed_response" and result.attempts == 3


def test_length_and_content_filter_are_kept_apart(ask, fake_teacher, teacher_config):
    server = fake_teacher()
    length, filtered, bad = ask(
        teacher_config(server.base_url), [f"a {LENGTH_MARKER}", f"b {CONTENT_FILTER_MARKER}", f"c {BAD_REQUEST_MARKER}"]
    )
    assert length.kept_apart_reason == "length" and length.finish_reason == "length" and not length.for_training
    assert filtered.kept_apart_reason == "content_filter" and not filtered.for_training
    assert isinstance(bad, Failure) and bad.reason == "http_400" and bad.attempts == 1


def test_parse_refusals_and_azure_filter_errors():
    body = b'{"choices": [{"message": {"content": null, "refusal": "I cannot help"}, "finish_reason": "stop"}]}'
    assert parse_chat_completion(body).kept_apart_reason == "refusal"
    body = b'{"choices": [{"message": {"content": ""}, "finish_reason": "stop"}]}'
    assert parse_chat_completion(body).kept_apart_reason == "empty_response"
    for broken in (b"not json", b"[]", b'{"choices": []}', b'{"choices": [{"text": "x"}]}'):
        with pytest.raises(MalformedResponse):
            parse_chat_completion(broken)
    from orca_jax.augment.teacher.completion import is_content_filter_error

    assert is_content_filter_error(b'{"error": {"code": "content_filter", "message": "blocked"}}')
    assert not is_content_filter_error(b'{"error": {"code": "context_length_exceeded"}}')


def test_wrong_key_is_fatal_and_scrubbed(ask, fake_teacher, teacher_config):
    server = fake_teacher(echo_auth_in_errors=True)
    with pytest.raises(FatalTeacherError) as info:
        ask(teacher_config(server.base_url), _questions(1), key="sk-wrong-but-secret-42")
    assert "sk-wrong-but-secret-42" not in str(info.value) and "401" in str(info.value)


def test_payload_and_api_key_loading(monkeypatch, teacher_config):
    config = teacher_config("http://127.0.0.1:1/v1", temperature=0.7)
    client = TeacherClient(config, None)
    assert client.payload("", "q")["messages"] == [{"role": "user", "content": "q"}]  # paper's empty message #1
    body = client.payload("sys", "q")
    assert (
        body["messages"][0] == {"role": "system", "content": "sys"}
        and body["max_tokens"] == 256
        and body["temperature"] == 0.7
    )
    monkeypatch.delenv(config.api_key_env, raising=False)
    with pytest.raises(MissingApiKey) as info:
        load_api_key(config)
    assert config.api_key_env in str(info.value)
    monkeypatch.setenv(config.api_key_env, "sk-from-env-123456")
    key = load_api_key(config)
    assert key.reveal() == "sk-from-env-123456" and "sk-from" not in repr(key) + str(key) + f"{key}"
    assert load_api_key(teacher_config("http://x/v1", use_auth=False)) is None


def test_retry_after_parsing_and_backoff():
    assert parse_retry_after({"Retry-After": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= parse_retry_after({"Retry-After": date}) <= 31
    assert parse_retry_after({}) is None and parse_retry_after({"Retry-After": "soon"}) is None
    policy, rng = BackoffPolicy(base_s=1.0, max_s=8.0, max_retry_after_s=20.0), random.Random(0)
    for attempt, ceiling in [(0, 1.0), (1, 2.0), (3, 8.0), (10, 8.0)]:
        delays = [policy.delay(attempt, None, rng) for _ in range(50)]
        assert min(delays) >= ceiling / 2 and max(delays) <= ceiling and len(set(delays)) > 1  # jittered
    assert 5.0 <= policy.delay(0, 5.0, rng) <= 5.5 and policy.delay(0, 999.0, rng) <= 22.0


def test_token_bucket_limits_the_rate():
    async def take(n):
        bucket = TokenBucket(per_minute=600, burst_s=0.1)  # 10 per second, burst of 1
        start = time.monotonic()
        for _ in range(n):
            await bucket.acquire(1)
        return time.monotonic() - start

    assert asyncio.run(take(6)) >= 0.45
