"""Fetch the public BBH and AGIEval files into a local cache (never called by the tests).

Layout of the cache (what `runner.evaluate` looks for under `data_dir`):

    <cache_dir>/bbh/<task>.json              27 files, suzgunmirac/BIG-Bench-Hard bbh/
    <cache_dir>/agieval/v1/<task>.jsonl      ruixiangcui/AGIEval data/v1/ (English tasks + math)

Files are pinned to the commits that /work/shared/data was copied from, so every checkout
evaluates on the same bytes. Existing files are kept; each file is written atomically.
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Callable

from orca_jax.evaluation.loaders import AGIEVAL_DEFAULT_TASKS, AGIEVAL_OTHER_ENGLISH_TASKS, BBH_TASKS

BBH_COMMIT = "9ee07bd481feebf959a6b59d61ea57bdcf30964d"
AGIEVAL_COMMIT = "5c77d073fda993f1652eaae3cf5d04cc5fd21d40"
BBH_URL = "https://raw.githubusercontent.com/suzgunmirac/BIG-Bench-Hard/{commit}/bbh/{task}.json"
AGIEVAL_URL = "https://raw.githubusercontent.com/ruixiangcui/AGIEval/{commit}/data/v1/{task}.jsonl"
DEFAULT_CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "orca_jax", "eval_data")


def bbh_dir(cache_dir: str) -> str:
    return os.path.join(cache_dir, "bbh")


def agieval_dir(cache_dir: str) -> str:
    return os.path.join(cache_dir, "agieval", "v1")


def urlopen_fetch(url: str, timeout: float = 60.0) -> bytes:
    """GET `url` and return the body (raises on HTTP errors)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - fixed https URLs
        return response.read()


def planned_files(cache_dir: str) -> list[tuple[str, str]]:
    """(url, local path) for every file `download` fetches."""
    files = [
        (BBH_URL.format(commit=BBH_COMMIT, task=t), os.path.join(bbh_dir(cache_dir), t + ".json")) for t in BBH_TASKS
    ]
    files += [
        (AGIEVAL_URL.format(commit=AGIEVAL_COMMIT, task=t), os.path.join(agieval_dir(cache_dir), t + ".jsonl"))
        for t in AGIEVAL_DEFAULT_TASKS + AGIEVAL_OTHER_ENGLISH_TASKS
    ]
    return files


def download(
    cache_dir: str = DEFAULT_CACHE_DIR,
    fetch: Callable[[str], bytes] = urlopen_fetch,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, str]:
    """Fetch the benchmark files into `cache_dir`; returns {"bbh_dir": ..., "agieval_dir": ...}."""
    for url, path in planned_files(cache_dir):
        if os.path.exists(path) and not overwrite:
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        data = fetch(url)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        log(f"fetched {url} -> {path} ({len(data)} bytes)")
    return {"bbh_dir": bbh_dir(cache_dir), "agieval_dir": agieval_dir(cache_dir)}
