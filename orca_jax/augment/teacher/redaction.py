"""Keep the API key out of logs, error messages, reprs and files.

`Secret` holds the key and never shows it; `scrub` removes every registered secret (and
anything that looks like a bearer token or an `api_key=` URL parameter) from a string.
Every message this package logs or writes that may carry text from httpx or from the
server goes through `scrub`; `RedactingFilter` does the same for log records.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback

MASK = "***"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)(bearer\s+)[^\s'\",;]+"), r"\1" + MASK),
    (re.compile(r"(?i)(\b(?:api[-_]?key|access[-_]?token|token)=)[^&\s'\"]+"), r"\1" + MASK),
    (re.compile(r"(?i)(\b(?:api[-_]?key|authorization)['\"]?\s*[:=]\s*['\"]?)[^\s'\",;}&]+"), r"\1" + MASK),
    (re.compile(r"(://)[^/@\s:]+:[^/@\s]+@"), r"\1" + MASK + "@"),
)

_lock = threading.Lock()
_registered: set[str] = set()


class Secret:
    """A string that never shows itself in repr/str/format; `reveal()` returns it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise ValueError("a secret must be a non-empty string")
        self._value = value
        register_secret(value)

    def reveal(self) -> str:
        """The secret itself; use only to build the request header."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __reduce__(self):  # pragma: no cover - defensive
        raise TypeError("Secret values cannot be pickled")


def register_secret(value: str) -> None:
    """Add `value` to the strings that `scrub` removes."""
    if value:
        with _lock:
            _registered.add(value)


def scrub(text: object) -> str:
    """`text` as a string with every registered secret and token-like value masked."""
    out = redact_secrets(text if isinstance(text, str) else str(text))
    for pattern, replacement in _PATTERNS:
        out = pattern.sub(replacement, out)
    return out


def redact_secrets(text: str) -> str:
    """`text` with registered secret values masked, and nothing else changed (for data rows)."""
    with _lock:
        secrets = sorted(_registered, key=len, reverse=True)
    for value in secrets:
        if value in text:
            text = text.replace(value, MASK)
    return text


def describe_exception(exc: BaseException) -> str:
    """`Type: message` for an exception, scrubbed (httpx messages may hold URLs)."""
    message = str(exc)
    return scrub(f"{type(exc).__name__}: {message}" if message else type(exc).__name__)


def format_exception_scrubbed(exc: BaseException) -> str:
    """A full traceback of `exc`, scrubbed."""
    return scrub("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))


class RedactingFilter(logging.Filter):
    """A logging filter that scrubs the formatted message and any traceback text."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # pragma: no cover - malformed log call
            message = str(record.msg)
        record.msg = scrub(message)
        record.args = None
        if record.exc_info:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True
