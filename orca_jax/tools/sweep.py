"""Hyperparameter sweeps over gin bindings, launched on TPU VMs (or through xmanager).

A sweep file is a Python file that defines `get_sweep()`, returning a list of points
(dicts {gin binding name: value}) built with `orca_jax.tools.hyper`; optionally
`NAME` (default: the file's stem), `GIN_FILES` (base gin files, before any --gin_file),
`BINDINGS` ({name: value} every run gets, such as INIT_FROM; a --gin.NAME=VALUE given
here overrides one) and `ABBREVIATIONS` ({binding name: short name} for run names)::

    # sweeps/lr_batch.py
    from orca_jax.tools import hyper
    NAME = "lr_batch"
    GIN_FILES = ["runs/orca_13b.gin"]  # found in gin_configs/ by the trainer
    BINDINGS = {"INIT_FROM": "gs://BUCKET/llama13b_converted"}
    ABBREVIATIONS = {"StageConfig.num_microbatches": "mb"}
    def get_sweep():
        return hyper.product([
            hyper.sweep("LEARNING_RATE", [1e-5, 2e-5]),
            hyper.zipit([hyper.sweep("BATCH_SIZE", [64, 128]),
                         hyper.sweep("StageConfig.num_microbatches", [1, 2])]),
        ])

    python -m orca_jax.tools.sweep --sweep_file=sweeps/lr_batch.py \\
        --model_dir_root=gs://my-bucket/orca/sweeps/lr_batch \\
        --tpu=orca-sweep --zone=us-east5-a --accelerator=v5p-128 [--spot] \\
        [--mode=parallel|sequential] [--launcher=auto|tpu_vm|xmanager] \\
        [--gin.NAME=VALUE ...] [--restart_on_preemption] [--dry_run]

Point i becomes run `<name>-<i>-<summary>` (summary: abbreviated bindings, e.g.
`lr_batch-1-lr1e-05_bs128_mb2`) with MODEL_DIR `<model_dir_root>/<run name>` and
`--gin.NAME=VALUE` for each binding (after the common ones: BINDINGS and --gin.NAME=VALUE).
Before any slice is created, every run's gin config is parsed here (as the trainer will),
a model larger than the test presets without INIT_FROM is refused unless --from_scratch,
and INIT_FROM and --data_dir must exist (see launch.py).

* `--mode=parallel` (default): one slice per run, named `<tpu>-<i>`.
* `--mode=sequential`: every run one after the other on the one slice `<tpu>` (one
  run script with one `python -m orca_jax.train` per run; finished runs are skipped if
  the script is rerun after a preemption).
* `--launcher=auto` (default): xmanager when it is installed and the mode is parallel,
  else the TPU VM launcher (`launch.py`) in this process. Through xmanager, the sweep is
  one local experiment (`xm_local.create_experiment`) with one work unit per run, each
  running `python -m orca_jax.tools.launch ...` for its run on the local executor, so
  xmanager keeps the experiment's record while the launcher drives the TPU VM. That path
  is minimal and was written against xmanager 0.8.5's API without a live run.

`--dry_run` lists the runs with their bindings and prints every command (for xmanager:
the launcher command of each work unit) without running anything.
`python -m orca_jax.tools.gcs list_runs <model_dir_root>` shows the runs' progress.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import re
import runpy
import sys
from collections.abc import Sequence
from typing import Any

from orca_jax.tools import gcs, hyper, topologies
from orca_jax.tools import launch as launch_lib
from orca_jax.tools.side_effects import DryRunRunner, Runner

SUMMARY_MAX_CHARS = 60


@dataclasses.dataclass
class SweepDef:
    name: str
    points: list[dict[str, Any]]
    gin_files: list[str]
    abbreviations: dict[str, str]
    bindings: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Bindings every run gets (the file's BINDINGS, e.g. INIT_FROM); --gin.NAME=VALUE overrides them."""


@dataclasses.dataclass
class SweepRun:
    index: int
    name: str
    model_dir: str
    point: dict[str, Any]
    bindings: list[tuple[str, str]]  # common + point bindings, as gin text

    def job(self, gin_files: Sequence[str], distributed: bool = False) -> launch_lib.TrainJob:
        return launch_lib.TrainJob(self.name, self.model_dir, list(gin_files), list(self.bindings), distributed)


def load_sweep_file(path: str) -> SweepDef:
    if not os.path.exists(path):
        raise FileNotFoundError(f"--sweep_file={path}: no such file")
    namespace = runpy.run_path(path, run_name="orca_sweep_file")
    if "get_sweep" not in namespace:
        raise ValueError(f"--sweep_file={path}: defines no get_sweep()")
    points = list(namespace["get_sweep"]())
    if not points or not all(isinstance(p, dict) for p in points):
        raise ValueError(f"--sweep_file={path}: get_sweep() must return a non-empty list of dicts")
    name = namespace.get("NAME") or os.path.splitext(os.path.basename(path))[0]
    return SweepDef(
        name=str(name),
        points=points,
        gin_files=list(namespace.get("GIN_FILES", [])),
        abbreviations=dict(namespace.get("ABBREVIATIONS", {})),
        bindings=dict(namespace.get("BINDINGS", {})),
    )


def sweep_bindings(sweep: SweepDef, command_line: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The sweep file's BINDINGS (as gin text) overridden by --gin.NAME=VALUE, then the rest of those."""
    given = dict(command_line)
    merged = [(k, given.pop(k) if k in given else hyper.gin_literal(v)) for k, v in sweep.bindings.items()]
    return merged + list(given.items())


def abbreviate(name: str, abbreviations: dict[str, str]) -> str:
    """LEARNING_RATE -> lr, BATCH_SIZE -> bs, DataConfig.num_epochs -> ne, DROPOUT -> drop."""
    if name in abbreviations:
        return abbreviations[name]
    base = re.split(r"[./]", name)[-1]
    parts = [p for p in re.split(r"_+", base) if p]
    if len(parts) > 1:
        return "".join(p[0] for p in parts).lower()
    return base[:4].lower()


def format_value(value: Any) -> str:
    if isinstance(value, hyper.raw):
        text = value.text
    elif isinstance(value, float):
        text = f"{value:g}"
    else:
        text = str(value)
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text).strip("_")


def summarize(point: dict[str, Any], abbreviations: dict[str, str]) -> str:
    summary = "_".join(f"{abbreviate(k, abbreviations)}{format_value(v)}" for k, v in point.items())
    return summary[:SUMMARY_MAX_CHARS].rstrip("_")


def make_runs(sweep: SweepDef, model_dir_root: str, common_bindings: Sequence[tuple[str, str]]) -> list[SweepRun]:
    common_names = {k for k, _ in common_bindings}
    runs = []
    for i, point in enumerate(sweep.points):
        clash = common_names & set(point)
        if clash:
            raise ValueError(f"--gin.{sorted(clash)[0]} is also swept by the sweep file")
        if "MODEL_DIR" in point:
            raise ValueError("the sweep sets MODEL_DIR; each run's MODEL_DIR is <model_dir_root>/<run name>")
        summary = summarize(point, sweep.abbreviations)
        name = f"{sweep.name}-{i}" + (f"-{summary}" if summary else "")
        bindings = list(common_bindings) + [(k, hyper.gin_literal(v)) for k, v in point.items()]
        runs.append(SweepRun(i, name, gcs.join(model_dir_root, name), dict(point), bindings))
    return runs


def describe_runs(sweep: SweepDef, runs: Sequence[SweepRun], header: str) -> str:
    lines = [f"# sweep {sweep.name}: {len(runs)} run(s), {header}"]
    for run in runs:
        lines.append(f"#   [{run.index}] {run.name}")
        lines.append(f"#       model_dir: {run.model_dir}")
        lines.append("#       bindings:  " + " ".join(f"{k}={v}" for k, v in run.bindings))
    return "\n".join(lines)


def xmanager_available() -> bool:
    return importlib.util.find_spec("xmanager") is not None


def launch_with_xmanager(name: str, argvs: Sequence[list[str]], run_names: Sequence[str]) -> None:
    """One xm_local experiment; one work unit per run running the TPU VM launcher locally."""
    from xmanager import xm, xm_local  # guarded: only when xmanager is installed

    with xm_local.create_experiment(experiment_title=name) as experiment:
        [executable] = experiment.package(
            [xm.binary(executor_spec=xm_local.LocalSpec(), path=sys.executable, args=["-m", "orca_jax.tools.launch"])]
        )
        for run_name, argv in zip(run_names, argvs):
            experiment.add(xm.Job(executable=executable, executor=xm_local.Local(), name=run_name, args=list(argv)))


def run_tpu_name(tpu: str, index: int) -> str:
    return f"{tpu}-{index}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m orca_jax.tools.sweep",
        description="Launch a sweep of orca-jax runs. Extra --gin.NAME=VALUE apply to every run.",
    )
    parser.add_argument("--sweep_file", required=True)
    parser.add_argument("--gin_file", action="append", default=[], help="after the sweep file's GIN_FILES")
    parser.add_argument("--model_dir_root", required=True, help="gs:// folder; run i goes to <root>/<run name>")
    parser.add_argument("--name", default=None, help="sweep name (default: the file's NAME or stem)")
    parser.add_argument("--mode", choices=["parallel", "sequential"], default="parallel")
    parser.add_argument("--launcher", choices=["auto", "tpu_vm", "xmanager"], default="auto")
    launch_lib.add_slice_flags(parser)
    return parser


def main(argv: Sequence[str] | None = None, runner: Runner | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    common = launch_lib.parse_gin_bindings(extra, parser)
    root = launch_lib.check_model_dir(args.model_dir_root, "--model_dir_root", parser)
    try:
        sweep = load_sweep_file(args.sweep_file)
    except (FileNotFoundError, ValueError) as e:
        parser.error(str(e))
    if args.name:
        sweep.name = args.name
    gin_files = sweep.gin_files + list(args.gin_file)
    if not gin_files:
        parser.error("no gin files: set GIN_FILES in the sweep file or pass --gin_file")
    common = sweep_bindings(sweep, common)
    try:
        runs = make_runs(sweep, root, common)
    except ValueError as e:
        parser.error(str(e))
    base_slice = launch_lib.slice_from_args(args, parser)  # validates the slice flags once
    code = launch_lib.code_from_args(args, parser)
    env = launch_lib.env_from_args(args, parser)
    launch_id = args.launch_id or launch_lib.default_launch_id()

    launcher_kind = args.launcher
    if launcher_kind == "auto":
        launcher_kind = "xmanager" if (args.mode == "parallel" and xmanager_available()) else "tpu_vm"
    if launcher_kind == "xmanager" and args.mode == "sequential":
        parser.error("--launcher=xmanager runs one slice per run: use --mode=parallel")

    runner = runner or launch_lib.make_runner(args.dry_run)
    out = runner.stream if isinstance(runner, DryRunRunner) else sys.stdout
    where = (
        f"one slice per run ({base_slice.accelerator}, named {base_slice.tpu}-<i>)"
        if args.mode == "parallel"
        else f"one after the other on {base_slice.tpu} ({base_slice.accelerator})"
    )
    print(describe_runs(sweep, runs, f"{args.mode}: {where}, launcher {launcher_kind}"), file=out, flush=True)
    everything = launch_lib.Deployment(
        slice=base_slice, jobs=[run.job(gin_files) for run in runs], code=code, data_dir=args.data_dir
    )
    try:  # every run's gin config, INIT_FROM and --data_dir, before any slice is created
        launch_lib.preflight(everything, runner, from_scratch=args.from_scratch)
    except launch_lib.LaunchError as e:
        parser.error(str(e))

    if launcher_kind == "xmanager":
        common_flags = launch_lib.slice_argv(args, parser)
        argvs = []
        for run in runs:
            argv = [
                f"--tpu={run_tpu_name(args.tpu, run.index)}",
                *common_flags,
                *[f"--gin_file={f}" for f in gin_files],
                f"--model_dir={run.model_dir}",
                f"--run_name={run.name}",
                f"--launch_id={launch_id}",
                *[f"--gin.{k}={v}" for k, v in run.bindings],
            ]
            argvs.append(argv)
        if runner.dry_run:
            runner.note(f"would create xmanager experiment {sweep.name!r} (xm_local) with {len(runs)} work unit(s):")
            for argv in argvs:
                runner.run([sys.executable, "-m", "orca_jax.tools.launch", *argv])
            return 0
        launch_with_xmanager(sweep.name, argvs, [r.name for r in runs])
        return 0

    def deployment(tpu: str, jobs: list[launch_lib.TrainJob]) -> launch_lib.Deployment:
        slice_cfg = dataclasses.replace(
            base_slice, tpu=tpu, queued_resource_id=None if args.mode == "parallel" else base_slice.queued_resource_id
        )
        return launch_lib.deployment_from_args(args, slice_cfg, jobs, code, env, launch_id)

    multi_host = topologies.get_topology(base_slice.accelerator).multi_host
    if args.mode == "parallel":
        deps = [deployment(run_tpu_name(args.tpu, run.index), [run.job(gin_files, multi_host)]) for run in runs]
    else:
        deps = [deployment(args.tpu, [run.job(gin_files, multi_host) for run in runs])]

    def quieter():  # print the first run script in full, then only file names
        if isinstance(runner, DryRunRunner):
            runner.print_files = False

    return launch_lib.deploy_and_watch(deps, args, runner, after_first=quieter)


if __name__ == "__main__":
    sys.exit(main())
