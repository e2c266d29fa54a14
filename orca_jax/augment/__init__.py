"""Teacher augmentation: explanation-augmented FLAN from any OpenAI-compatible teacher.

Pipeline (one output folder per teacher run; see layout.py for its files):

- sampling.py    FLAN-v2 inputs -> manifest: paper quotas (quotas.py), Algorithm 1
                 (stratified.py), system messages per collection (message_choice.py,
                 multiple_choice.py); manifest.py writes it once, atomically.
- runner.py      manifest -> teacher (teacher.py: retries, backoff, rate limits) ->
                 append-only, fsync'd JSONL (output_writer.py, jsonl_store.py); resumable
                 from what is on disk (state.py).
- finalize.py    Parquet in the OpenOrca schema (schema.py); report.py counts and cost.
- cli.py         `python -m orca_jax.augment {sample,subset,run,finalize,report}`.
- fake_teacher.py  a local fault-injecting OpenAI-compatible server for tests/benchmarks.

The API key is read from an environment variable and never written or logged (redaction.py).
"""

from orca_jax.augment.layout import OutputLayout
from orca_jax.augment.runner import RunOptions, RunSummary, run_async, run_augmentation
from orca_jax.augment.sampling import SamplingSpec, sample_manifest
from orca_jax.augment.teacher import TeacherClient, TeacherConfig

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
