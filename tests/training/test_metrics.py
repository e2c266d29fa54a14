"""metrics.jsonl after resumes: one record per logged step, whatever the checkpoint and log
intervals, and a line torn by a kill mid-write is dropped."""

import json

from orca_jax.training.metrics import METRICS_FILE, MetricsWriter, read_metrics, truncate_records


def write_steps(run_dir, steps, start, tag):
    writer = MetricsWriter(str(run_dir), total_steps=12, start_step=start)
    for step in steps:
        writer.write(step, {"loss": float(step), "run": tag})
    writer.close()


def test_resume_with_a_checkpoint_interval_not_a_multiple_of_the_log_interval(tmp_path):
    # Log every 2 steps, checkpoint every 3: killed after logging step 8, the last complete
    # checkpoint is step 6; a second kill after step 10, and the run resumes from step 9.
    write_steps(tmp_path, [2, 4, 6, 8], start=0, tag="first")
    write_steps(tmp_path, [8, 10], start=6, tag="second")
    write_steps(tmp_path, [10, 12], start=9, tag="third")
    records = read_metrics(str(tmp_path))
    assert [(r["step"], r["run"]) for r in records] == [
        (2, "first"),
        (4, "first"),
        (6, "first"),
        (8, "second"),
        (10, "third"),
        (12, "third"),
    ]


def test_a_torn_last_line_is_dropped_on_resume(tmp_path):
    write_steps(tmp_path, [1, 2, 3], start=0, tag="first")
    path = tmp_path / METRICS_FILE
    with path.open("a") as f:
        f.write('{"step": 4, "lo')  # killed mid-write
    assert [r["step"] for r in read_metrics(str(tmp_path))] == [1, 2, 3]  # readers skip it too
    write_steps(tmp_path, [4], start=3, tag="second")
    lines = path.read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4]


def test_truncate_keeps_an_intact_file_untouched(tmp_path):
    path = tmp_path / METRICS_FILE
    text = "".join(json.dumps({"step": s, "loss": 0.1 * s}) + "\n" for s in (1, 2))
    path.write_text(text)
    mtime = path.stat().st_mtime_ns
    assert truncate_records(path, 5) == 0
    assert path.read_text() == text and path.stat().st_mtime_ns == mtime
    assert truncate_records(path, 1) == 1
    assert [r["step"] for r in read_metrics(str(tmp_path))] == [1]
