"""`python -m orca_jax.demo`: see orca_jax.demo.cli."""

from orca_jax.demo.cli import main

main()
