"""mini-Orca: the paper's two claims replayed at laptop scale (`python -m orca_jax.demo`).

  families.py    procedurally generated query families with local-step traces
  teachers.py    the assistant (ChatGPT stand-in), the expert (GPT-4 stand-in), answer-only
  dataset.py     the bundled data: rows, tokenizer, held-out sets (`python -m orca_jax.demo.dataset`)
  files.py       paths of the bundled data (import-free)
  conditions.py  progressive / expert_only / answer_only as gin bindings
  claims.py      the claims' verdicts and report.md
  cli.py         the command line (`main`, also the `orca-demo` console script)

Importing this package is free (no jax, no TensorFlow): `main` imports the CLI when called.
"""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    """The demo's command line (orca_jax.demo.cli.main)."""
    from orca_jax.demo.cli import main as cli_main

    cli_main(argv)
