"""orca_jax/tools/sweep.py: runs, names, bindings and exact dry-run commands."""

import io
import os
import sys
import types

import pytest

from orca_jax.tools import hyper, launch, sweep
from orca_jax.tools.side_effects import DryRunRunner

REPO = launch.REPO_ROOT
LR_BATCH = os.path.join(REPO, "sweeps", "lr_batch.py")
ROOT = "gs://bkt/sweeps/lr_batch"
SLICE = ["--tpu=sw", "--zone=z1", "--accelerator=v5p-128", "--launch_id=L"]
GIN = "runs/orca_13b.gin"

EXPECTED_RUNS = [
    (
        "lr_batch-0-lr1e-05_bs64_mb1",
        [("LEARNING_RATE", "1e-05"), ("BATCH_SIZE", "64"), ("StageConfig.num_microbatches", "1")],
    ),
    (
        "lr_batch-1-lr1e-05_bs128_mb2",
        [("LEARNING_RATE", "1e-05"), ("BATCH_SIZE", "128"), ("StageConfig.num_microbatches", "2")],
    ),
    (
        "lr_batch-2-lr2e-05_bs64_mb1",
        [("LEARNING_RATE", "2e-05"), ("BATCH_SIZE", "64"), ("StageConfig.num_microbatches", "1")],
    ),
    (
        "lr_batch-3-lr2e-05_bs128_mb2",
        [("LEARNING_RATE", "2e-05"), ("BATCH_SIZE", "128"), ("StageConfig.num_microbatches", "2")],
    ),
]


INIT = ("INIT_FROM", '"gs://BUCKET/llama13b_converted"')  # the sweep file's BINDINGS


def train_cmd(name, bindings):
    argv = [
        "python3",
        "-m",
        "orca_jax.train",
        "--distributed",
        "--preempted_exit_code=75",
        f"--gin_file={GIN}",
        *[f"--gin.{k}={v}" for k, v in [INIT, *bindings]],
        f'--gin.MODEL_DIR="{ROOT}/{name}"',
    ]
    return argv


def dry(argv, **kw):
    runner = DryRunRunner(stream=io.StringIO(), **kw)
    rc = sweep.main(argv, runner=runner)
    return rc, runner


def test_runs_names_and_bindings():
    sw = sweep.load_sweep_file(LR_BATCH)
    assert sw.name == "lr_batch" and sw.gin_files == [GIN]
    runs = sweep.make_runs(sw, ROOT, [("SEQUENCE_LENGTH", "2048")])
    assert [r.name for r in runs] == [n for n, _ in EXPECTED_RUNS]
    assert [r.model_dir for r in runs] == [f"{ROOT}/{n}" for n, _ in EXPECTED_RUNS]
    assert [r.bindings for r in runs] == [[("SEQUENCE_LENGTH", "2048")] + b for _, b in EXPECTED_RUNS]
    with pytest.raises(ValueError, match="--gin.LEARNING_RATE is also swept"):
        sweep.make_runs(sw, ROOT, [("LEARNING_RATE", "1.0")])
    # The file's BINDINGS come first; a --gin.NAME=VALUE overrides one of them.
    assert sw.bindings == {"INIT_FROM": "gs://BUCKET/llama13b_converted"}
    assert sweep.sweep_bindings(sw, [("SEQUENCE_LENGTH", "2048")]) == [INIT, ("SEQUENCE_LENGTH", "2048")]
    assert sweep.sweep_bindings(sw, [("INIT_FROM", "gs://b/ll")]) == [("INIT_FROM", "gs://b/ll")]


def test_abbreviations_and_summary():
    assert sweep.abbreviate("LEARNING_RATE", {}) == "lr"
    assert sweep.abbreviate("train.num_steps", {}) == "ns"
    assert sweep.abbreviate("DROPOUT", {}) == "drop"
    assert sweep.abbreviate("StageConfig.num_microbatches", {"StageConfig.num_microbatches": "mb"}) == "mb"
    assert sweep.abbreviate("StageConfig.num_microbatches", {}) == "nm"
    point = {"MIXTURE_OR_TASK_NAME": "orca/stage 2", "INIT_FROM": hyper.raw("@fn()")}
    assert sweep.summarize(point, {}) == "motnorca_stage_2_iffn"


def test_parallel_dry_run_exact_commands():
    rc, r = dry(
        ["--sweep_file", LR_BATCH, f"--model_dir_root={ROOT}", *SLICE, "--spot", "--launcher=tpu_vm", "--dry_run"]
    )
    assert rc == 0
    loc = ["--zone=z1"]
    tar = launch.tar_cmd(REPO, "/tmp/orca-jax-src-L.tar.gz")
    expected = []
    for i in range(4):
        tpu = f"sw-{i}"
        expected += [
            ["gcloud", "compute", "tpus", "tpu-vm", "describe", tpu, *loc, "--format=value(state)"],
            [
                "gcloud",
                "compute",
                "tpus",
                "tpu-vm",
                "create",
                tpu,
                *loc,
                "--accelerator-type=v5p-128",
                "--version=v2-alpha-tpuv5",
                "--spot",
            ],
        ]
    for i in range(4):
        tpu = f"sw-{i}"
        expected += ([tar] if i == 0 else []) + [
            [
                "gcloud",
                "compute",
                "tpus",
                "tpu-vm",
                "scp",
                "/tmp/orca-jax-src-L.tar.gz",
                f"{tpu}:orca-jax-src.tar.gz",
                *loc,
                "--worker=all",
            ],
            [
                "gcloud",
                "compute",
                "tpus",
                "tpu-vm",
                "ssh",
                tpu,
                *loc,
                "--worker=all",
                f"--command={launch.install_command(launch.CodeSource())}",
            ],
            [
                "gcloud",
                "compute",
                "tpus",
                "tpu-vm",
                "scp",
                f"/tmp/orca-run-{tpu}.sh",
                f"{tpu}:orca-run.sh",
                *loc,
                "--worker=all",
            ],
            [
                "gcloud",
                "compute",
                "tpus",
                "tpu-vm",
                "ssh",
                tpu,
                *loc,
                "--worker=all",
                f"--command={launch.start_command()}",
            ],
        ]
    assert r.commands == expected
    for i, (name, bindings) in enumerate(EXPECTED_RUNS):
        script = r.files[f"/tmp/orca-run-sw-{i}.sh"]
        assert f"run_job {name} {ROOT}/{name} " + launch.shlex.join(train_cmd(name, bindings)) + " || exit $?" in script
        assert script.count("run_job ") == 2  # the function definition line + one run
    out = r.stream.getvalue()
    assert "# sweep lr_batch: 4 run(s), parallel: one slice per run (v5p-128, named sw-<i>), launcher tpu_vm" in out
    assert "#   [1] lr_batch-1-lr1e-05_bs128_mb2" in out
    assert f"#       model_dir: {ROOT}/lr_batch-1-lr1e-05_bs128_mb2" in out
    assert (
        '#       bindings:  INIT_FROM="gs://BUCKET/llama13b_converted" LEARNING_RATE=1e-05 BATCH_SIZE=128 '
        "StageConfig.num_microbatches=2"
    ) in out
    assert "lr_batch-1-lr1e-05_bs128_mb2: llama_13b model; stage1 starts from gs://BUCKET/llama13b_converted" in r.notes
    assert r.notes.count("would check that INIT_FROM gs://BUCKET/llama13b_converted exists") == 1


def test_sequential_dry_run_one_slice_one_script():
    rc, r = dry(
        [
            "--sweep_file",
            LR_BATCH,
            f"--model_dir_root={ROOT}",
            *SLICE,
            "--mode=sequential",
            "--queued",
            "--spot",
            "--gin.SEQUENCE_LENGTH=2048",
            "--dry_run",
        ]
    )
    assert rc == 0
    targets = {c[5] if c[4] != "scp" else c[6].split(":")[0] for c in r.commands if c[0] == "gcloud"}
    assert targets == {"sw", "sw-qr"}  # one slice (and its queued resource) for all runs
    assert r.commands[0] == [
        "gcloud",
        "compute",
        "tpus",
        "queued-resources",
        "describe",
        "sw-qr",
        "--zone=z1",
        "--format=value(state.state)",
    ]
    assert r.commands[1] == [
        "gcloud",
        "compute",
        "tpus",
        "queued-resources",
        "create",
        "sw-qr",
        "--node-id=sw",
        "--zone=z1",
        "--accelerator-type=v5p-128",
        "--runtime-version=v2-alpha-tpuv5",
        "--spot",
    ]
    script = r.files["/tmp/orca-run-sw.sh"]
    job_lines = [line for line in script.splitlines() if line.startswith("run_job lr_batch")]
    assert job_lines == [
        f"run_job {n} {ROOT}/{n} " + launch.shlex.join(train_cmd(n, [("SEQUENCE_LENGTH", "2048")] + b)) + " || exit $?"
        for n, b in EXPECTED_RUNS
    ]
    # the run record goes next to the first run's checkpoints
    assert f"{ROOT}/lr_batch-0-lr1e-05_bs64_mb1/launch/run-L.sh" in r.files


def test_xmanager_dry_run_lists_launcher_commands():
    rc, r = dry(
        [
            "--sweep_file",
            LR_BATCH,
            f"--model_dir_root={ROOT}",
            *SLICE,
            "--spot",
            "--data_dir=gs://bkt/data",
            "--launcher=xmanager",
            "--dry_run",
        ]
    )
    assert rc == 0
    assert len(r.commands) == 4
    name, bindings = EXPECTED_RUNS[2]
    assert r.commands[2] == [
        sys.executable,
        "-m",
        "orca_jax.tools.launch",
        "--tpu=sw-2",
        "--zone=z1",
        "--accelerator=v5p-128",
        "--spot",
        "--data_dir=gs://bkt/data",
        "--dry_run",
        f"--gin_file={GIN}",
        f"--model_dir={ROOT}/{name}",
        f"--run_name={name}",
        "--launch_id=L",
        *[f"--gin.{k}={v}" for k, v in [INIT, *bindings]],
    ]
    assert "would create xmanager experiment 'lr_batch' (xm_local) with 4 work unit(s):" in r.notes


def test_xmanager_path_with_a_fake_module(monkeypatch):
    calls = []

    class Experiment:
        def __enter__(self):
            return self

        def __exit__(self, *a):
            calls.append(("exit",))

        def package(self, packageables):
            calls.append(("package", packageables))
            return ["EXE"]

        def add(self, job):
            calls.append(("add", job))

    xm = types.SimpleNamespace(binary=lambda **kw: ("binary", kw), Job=lambda **kw: kw)
    xm_local = types.SimpleNamespace(
        create_experiment=lambda experiment_title: Experiment(), LocalSpec=lambda: "spec", Local=lambda: "local"
    )
    monkeypatch.setitem(sys.modules, "xmanager", types.SimpleNamespace(xm=xm, xm_local=xm_local))
    monkeypatch.setattr(sweep, "xmanager_available", lambda: True)
    monkeypatch.setattr(launch.gcs, "exists", lambda path: path == "gs://BUCKET/llama13b_converted")

    class Recorder(DryRunRunner):  # records, but is not a dry run: the (fake) xmanager is called
        dry_run = False

    rc = sweep.main(
        ["--sweep_file", LR_BATCH, f"--model_dir_root={ROOT}", *SLICE], runner=Recorder(stream=io.StringIO())
    )
    assert rc == 0
    adds = [c[1] for c in calls if c[0] == "add"]
    assert [a["name"] for a in adds] == [n for n, _ in EXPECTED_RUNS]
    assert adds[0]["executable"] == "EXE" and adds[0]["executor"] == "local"
    assert f"--model_dir={ROOT}/{EXPECTED_RUNS[0][0]}" in adds[0]["args"]
    assert calls[0][1][0][1]["args"] == ["-m", "orca_jax.tools.launch"]


def test_sweep_flag_errors(tmp_path, capsys):
    bad = tmp_path / "bad.py"
    bad.write_text("X = 1\n")
    with pytest.raises(SystemExit):
        sweep.main(
            ["--sweep_file", str(bad), f"--model_dir_root={ROOT}", *SLICE, "--dry_run"],
            runner=DryRunRunner(stream=io.StringIO()),
        )
    assert "defines no get_sweep()" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        sweep.main(
            [
                "--sweep_file",
                LR_BATCH,
                f"--model_dir_root={ROOT}",
                *SLICE,
                "--mode=sequential",
                "--launcher=xmanager",
                "--dry_run",
            ],
            runner=DryRunRunner(stream=io.StringIO()),
        )
    assert "use --mode=parallel" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        sweep.main(
            [
                "--sweep_file",
                LR_BATCH,
                f"--model_dir_root={ROOT}",
                "--tpu=sw",
                "--zone=z1",
                "--accelerator=v5x-8",
                "--dry_run",
            ],
            runner=DryRunRunner(stream=io.StringIO()),
        )
    assert "--accelerator='v5x-8': unknown TPU accelerator" in capsys.readouterr().err


def test_example_sweep_files_load():
    for name in sorted(os.listdir(os.path.join(REPO, "sweeps"))):
        if name.endswith(".py"):
            sw = sweep.load_sweep_file(os.path.join(REPO, "sweeps", name))
            assert sw.points and sw.gin_files


def test_sweep_commands_parse_in_the_trainer():
    """Every example sweep's train command parses with orca_jax.train's flags and gin files
    (catches misspelt macros: the trainer rejects a --gin.MACRO that nothing uses)."""
    import subprocess

    if not os.path.exists(os.path.join(REPO, "orca_jax", "train.py")):
        pytest.skip("orca_jax/train.py not there yet")
    code = (
        "import os, gin, orca_jax.train as t\n"
        "from orca_jax import gin_utils\n"
        "from orca_jax.tools import sweep\n"
        "for name in sorted(os.listdir('sweeps')):\n"
        "    if not name.endswith('.py'): continue\n"
        "    sw = sweep.load_sweep_file(os.path.join('sweeps', name))\n"
        "    for run in sweep.make_runs(sw, 'gs://b/root', sweep.sweep_bindings(sw, [])):\n"
        "        args = t.parse_args(run.job(sw.gin_files, True).train_argv()[3:])\n"
        "        assert args.distributed\n"
        "        gin_utils.parse_gin(args.gin_file, args.gin_bindings)\n"
        "        assert gin.query_parameter('%MODEL_DIR') == run.model_dir\n"
        "        for k, v in run.point.items():\n"
        "            assert gin.query_parameter(k if '.' in k else '%' + k) == v, (k, v)\n"
        "print('ok')\n"
    )
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=REPO)
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


def test_sweep_checks_every_run_before_any_slice(capsys):
    """A 13B sweep without INIT_FROM (the examples used to omit it) is refused up front."""
    runner = DryRunRunner(stream=io.StringIO())
    with pytest.raises(SystemExit):
        sweep.main(
            [
                "--sweep_file",
                LR_BATCH,
                f"--model_dir_root={ROOT}",
                *SLICE,
                "--launcher=tpu_vm",
                "--gin.INIT_FROM=None",
                "--dry_run",
            ],
            runner=runner,
        )
    assert "would train the llama_13b model from random initialisation" in capsys.readouterr().err
    assert runner.commands == [] and runner.files == {}
    rc, r = dry(
        [
            "--sweep_file",
            LR_BATCH,
            f"--model_dir_root={ROOT}",
            *SLICE,
            "--launcher=tpu_vm",
            "--gin.INIT_FROM=None",
            "--from_scratch",
            "--dry_run",
        ]
    )
    assert rc == 0 and "lr_batch-0-lr1e-05_bs64_mb1: llama_13b model; stage1 starts from random weights" in r.notes
    with pytest.raises(SystemExit):
        sweep.main(
            ["--sweep_file", LR_BATCH, f"--model_dir_root={ROOT}", *SLICE, "--gin_file=runs/nope.gin", "--dry_run"],
            runner=DryRunRunner(stream=io.StringIO()),
        )
    assert "gin file(s) not found: runs/nope.gin" in capsys.readouterr().err
