"""Querying the teacher: any OpenAI-compatible chat-completions endpoint.

client.py      `TeacherClient`: one query -> `Completion` or `Failure`; retries, circuit breaker
completion.py  a response body -> `Completion` (kept apart if truncated/filtered) or malformed
pacing.py      retry backoff with jitter / Retry-After, and client-side rate limits (RPM/TPM)
redaction.py   the API key never reaches a log, an error message, a repr or a file
progress.py    progress of a run: tqdm bar or periodic log lines
"""
