"""`python -m orca_jax.augment` and the `orca-augment` console script (see cli.py for usage)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from orca_jax.augment.cli import main as _cli_main


def main(argv: Sequence[str] | None = None) -> int:
    """Run the augmentation CLI; returns (and as a script exits with) its status."""
    return _cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
