"""The run configuration saved next to the output (`run_config.json`).

It records the teacher settings of every run on the folder, with the *name* of the API
key's environment variable and never its value, and guards against mixing teachers: a run
whose model differs from the one already recorded is refused unless allowed.
"""

from __future__ import annotations

import datetime as _dt
import sys
from typing import Any

from orca_jax.augment.store.durable import atomic_write_json, read_json
from orca_jax.augment.store.layout import OutputLayout
from orca_jax.augment.teacher.client import TeacherConfig
from orca_jax.augment.teacher.redaction import redact_secrets, scrub


class TeacherMismatch(RuntimeError):
    """The folder already holds rows of another teacher."""


def record_run(
    layout: OutputLayout,
    config: TeacherConfig,
    run_index: int,
    options: dict[str, Any],
    allow_teacher_change: bool = False,
) -> dict[str, Any]:
    """Check the teacher against earlier runs and append this run to `run_config.json`."""
    saved: dict[str, Any] = read_json(layout.run_config) if layout.run_config.exists() else {"runs": []}
    previous = saved.get("teacher")
    if previous and previous.get("name") != config.name and not allow_teacher_change:
        raise TeacherMismatch(
            f"{layout.root} holds rows of teacher {previous.get('name')!r}; this run uses {config.name!r} "
            "(use a new output folder, or --allow-teacher-change)"
        )
    teacher = config.public_dict()
    teacher["name"] = config.name
    run = {
        "run_index": run_index,
        "started": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "teacher": teacher,
        "options": options,
        "python": sys.version.split()[0],
    }
    saved["teacher"] = teacher
    saved["api_key_env"] = config.api_key_env if config.use_auth else None
    saved.setdefault("runs", []).append(run)
    atomic_write_json(layout.run_config, _clean(saved))
    return saved


def _clean(value: Any) -> Any:
    """Scrub every string in a JSON-like value (defence in depth)."""
    if isinstance(value, str):
        return redact_secrets(scrub(value)) if "://" in value else redact_secrets(value)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def next_recorded_run_index(layout: OutputLayout) -> int:
    """One more than the highest run index recorded in `run_config.json` (0 if none)."""
    if not layout.run_config.exists():
        return 0
    return max((int(run.get("run_index", -1)) for run in read_json(layout.run_config).get("runs", [])), default=-1) + 1


def saved_prices(layout: OutputLayout) -> tuple[float, float]:
    """The prices per 1K prompt/completion tokens given to the latest run that had them."""
    if not layout.run_config.exists():
        return 0.0, 0.0
    for run in reversed(read_json(layout.run_config).get("runs", [])):
        options = run.get("options", {})
        prompt, completion = options.get("price_prompt_per_1k"), options.get("price_completion_per_1k")
        if prompt is not None or completion is not None:
            return float(prompt or 0.0), float(completion or 0.0)
    return 0.0, 0.0
