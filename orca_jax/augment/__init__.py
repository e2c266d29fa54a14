"""Teacher augmentation: explanation-augmented FLAN from any OpenAI-compatible teacher.

One output folder per teacher run (store/layout.py lists its files):

- sampling/  FLAN-v2 inputs -> manifest: paper quotas and Algorithm 1, system messages
             per collection; written once, atomically (store/manifest.py).
- run.py     manifest -> teacher (teacher/: retries, backoff, rate limits) -> append-only,
             fsync'd JSONL (store/); resumable from what is on disk (store/state.py).
- store/     also the Parquet output in the OpenOrca schema (finalize.py) and the report
             of counts and cost (output_report.py).
- cli.py     `python -m orca_jax.augment {sample,subset,run,finalize,report}`.

Test fixtures live in orca_jax.testing: a fault-injecting fake teacher (fake_teacher.py)
and synthetic FLAN input (synthetic_flan.py).

The API key is read from an environment variable and never written or logged
(teacher/redaction.py).
"""

from orca_jax.augment.run import RunOptions, RunSummary, run_async, run_augmentation
from orca_jax.augment.sampling.sample import SamplingSpec, sample_manifest
from orca_jax.augment.store.layout import OutputLayout
from orca_jax.augment.teacher.client import TeacherClient, TeacherConfig

__all__ = [
    "OutputLayout",
    "RunOptions",
    "RunSummary",
    "SamplingSpec",
    "TeacherClient",
    "TeacherConfig",
    "run_async",
    "run_augmentation",
    "sample_manifest",
]
