"""Read a chat-completions response body into a `Completion`, or say why it can't be used.

A completion is kept apart from the training set (`kept_apart_reason` set) when the
teacher stopped at the token limit (`finish_reason == "length"`), when a content filter
stopped or refused it (`finish_reason == "content_filter"`, a non-empty `refusal`, or an
HTTP 400 whose error code names the content filter, as Azure OpenAI returns), or when
its text is empty. A body that is not JSON or lacks `choices[0].message` is malformed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

KEPT_LENGTH = "length"
KEPT_CONTENT_FILTER = "content_filter"
KEPT_REFUSAL = "refusal"
KEPT_EMPTY = "empty_response"
_FILTER_CODES = ("content_filter", "content_policy_violation", "content_management_policy")


class MalformedResponse(ValueError):
    """The server answered 200 with a body that is not a chat completion."""


@dataclass(frozen=True)
class Completion:
    """The teacher's answer to one query."""

    content: str
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    kept_apart_reason: str | None = None

    @property
    def for_training(self) -> bool:
        return self.kept_apart_reason is None


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    raise MalformedResponse(f"message content has type {type(content).__name__}")


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def parse_chat_completion(body: bytes) -> Completion:
    """Parse a 200 response body; raises MalformedResponse if it is not a completion."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedResponse(f"body is not JSON ({len(body)} bytes)") from exc
    if not isinstance(data, dict):
        raise MalformedResponse("body is not a JSON object")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise MalformedResponse("response has no choices")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise MalformedResponse("first choice has no message")
    content = _text(message.get("content"))
    finish_reason = choices[0].get("finish_reason")
    finish_reason = finish_reason if isinstance(finish_reason, str) else None
    raw_usage = data.get("usage")
    usage: dict[str, Any] = raw_usage if isinstance(raw_usage, dict) else {}
    refusal = message.get("refusal")
    kept: str | None
    if finish_reason == "length":
        kept = KEPT_LENGTH
    elif finish_reason == "content_filter":
        kept = KEPT_CONTENT_FILTER
    elif isinstance(refusal, str) and refusal.strip():
        kept, content = KEPT_REFUSAL, content or refusal
    elif not content.strip():
        kept = KEPT_EMPTY
    else:
        kept = None
    return Completion(
        content=content,
        finish_reason=finish_reason,
        prompt_tokens=_int_or_none(usage.get("prompt_tokens")),
        completion_tokens=_int_or_none(usage.get("completion_tokens")),
        kept_apart_reason=kept,
    )


def is_content_filter_error(body: bytes) -> bool:
    """True if an error body says the prompt was blocked by a content filter."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return False
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return False
    inner = error.get("innererror")
    fields = [error.get("code"), error.get("type"), inner.get("code") if isinstance(inner, dict) else None]
    return any(isinstance(f, str) and f.lower() in _FILTER_CODES for f in fields)
