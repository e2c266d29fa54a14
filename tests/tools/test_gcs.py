"""orca_jax/tools/gcs.py: local-filesystem fallback, and gs:// dispatch through a fake client."""

import pytest

from orca_jax.tools import gcs


def test_local_roundtrip(tmp_path):
    p = str(tmp_path / "a" / "b" / "c.txt")
    assert not gcs.exists(p)
    gcs.write_text(p, "hello\n")
    assert gcs.exists(p) and gcs.read_text(p) == "hello\n"
    assert gcs.listdir(str(tmp_path / "a")) == ["b"]
    assert gcs.listdir(str(tmp_path / "missing")) == []
    src = tmp_path / "src.log"
    src.write_text("log")
    dst = str(tmp_path / "x" / "logs" / "w0.log")
    gcs.upload_file(str(src), dst)
    assert gcs.read_text(dst) == "log"
    gcs.remove(dst)
    assert not gcs.exists(dst)
    gcs.remove(dst)  # removing a missing file is fine
    assert gcs.isdir(str(tmp_path / "a")) and not gcs.isdir(p)


def test_join_and_split():
    assert gcs.join("gs://b/root/", "run", "/logs/") == "gs://b/root/run/logs"
    assert gcs.join("/tmp/x", "y") == "/tmp/x/y"
    assert gcs.split_gcs("gs://bucket/a/b") == ("bucket", "a/b")
    assert gcs.split_gcs("gs://bucket") == ("bucket", "")
    with pytest.raises(ValueError):
        gcs.split_gcs("/local")


def test_list_runs_local(tmp_path, capsys):
    root = tmp_path / "sweep"
    (root / "run-0" / "stage1").mkdir(parents=True)
    (root / "run-0" / "stage1" / "DONE").write_text("")
    (root / "run-0" / "stage2").mkdir()
    (root / "run-1" / "stage1").mkdir(parents=True)
    (root / "run-1" / "stage1" / "DONE").write_text("")
    (root / "run-1" / "stage2").mkdir()
    (root / "run-1" / "stage2" / "DONE").write_text("")
    (root / "run-1" / "logs").mkdir()
    (root / "run-1" / "logs" / "worker-0.exit").write_text("0")
    (root / "run-2" / "logs").mkdir(parents=True)  # launched, no checkpoint yet
    (root / "not-a-run").mkdir()
    runs = {r.name: r for r in gcs.list_runs(str(root))}
    assert sorted(runs) == ["run-0", "run-1", "run-2"]
    assert runs["run-0"].stages == {"stage1": True, "stage2": False} and not runs["run-0"].done
    assert runs["run-1"].done and runs["run-1"].exit_code == 0
    assert runs["run-2"].stages == {} and not runs["run-2"].done
    # a run directory itself
    assert [r.name for r in gcs.list_runs(str(root / "run-1"))] == ["run-1"]
    assert gcs.main(["list_runs", str(root)]) == 0
    out = capsys.readouterr().out
    assert "run-0" in out and "stage1:DONE" in out and "stage2:running/incomplete" in out


class FakeBlob:
    def __init__(self, store, bucket, name):
        self.store, self.bucket, self.name = store, bucket, name

    def exists(self):
        return (self.bucket, self.name) in self.store

    def download_as_text(self):
        return self.store[(self.bucket, self.name)]

    def upload_from_string(self, text, content_type=None):
        self.store[(self.bucket, self.name)] = text

    def upload_from_filename(self, filename):
        with open(filename) as f:
            self.store[(self.bucket, self.name)] = f.read()

    def delete(self):
        del self.store[(self.bucket, self.name)]


class FakeBucket:
    def __init__(self, store, name):
        self.store, self.name = store, name

    def blob(self, name):
        return FakeBlob(self.store, self.name, name)


class FakeIterator:
    """Like google.api_core's HTTPIterator: `prefixes` is filled while iterating."""

    def __init__(self, blobs, prefixes):
        self._blobs, self._prefixes, self.prefixes = blobs, prefixes, set()

    def __iter__(self):
        self.prefixes = set(self._prefixes)
        return iter(self._blobs)


class FakeClient:
    def __init__(self):
        self.store = {}

    def bucket(self, name):
        return FakeBucket(self.store, name)

    def list_blobs(self, bucket, prefix="", delimiter=None, max_results=None):
        blobs, prefixes = [], set()
        for b, name in sorted(self.store):
            if b != bucket or not name.startswith(prefix):
                continue
            rest = name[len(prefix) :]
            if delimiter and delimiter in rest:
                prefixes.add(prefix + rest.split(delimiter)[0] + delimiter)
            else:
                blobs.append(FakeBlob(self.store, b, name))
        if max_results is not None:
            blobs = (blobs + [FakeBlob(self.store, bucket, p) for p in sorted(prefixes)])[:max_results]
        return FakeIterator(blobs, prefixes)


@pytest.fixture
def fake_gcs():
    client = FakeClient()
    gcs.set_client(client)
    yield client
    gcs.set_client(None)


def test_gcs_dispatch(fake_gcs, tmp_path):
    gcs.write_text("gs://bkt/sweep/run-0/stage1/DONE", "")
    gcs.write_text("gs://bkt/sweep/run-0/stage2/checkpoint", "x")
    gcs.write_text("gs://bkt/sweep/run-0/logs/worker-0.exit", "1")
    local = tmp_path / "w.log"
    local.write_text("log text")
    gcs.upload_file(str(local), "gs://bkt/sweep/run-0/logs/L/worker-0.log")
    assert fake_gcs.store[("bkt", "sweep/run-0/logs/L/worker-0.log")] == "log text"
    assert gcs.read_text("gs://bkt/sweep/run-0/stage1/DONE") == ""
    assert gcs.exists("gs://bkt/sweep/run-0/stage1/DONE")
    assert gcs.exists("gs://bkt/sweep/run-0")  # a prefix
    assert not gcs.exists("gs://bkt/sweep/run-9")
    assert gcs.listdir("gs://bkt/sweep/run-0") == ["logs", "stage1", "stage2"]
    assert gcs.listdir("gs://bkt/sweep/run-0/logs") == ["L", "worker-0.exit"]
    [run] = gcs.list_runs("gs://bkt/sweep")
    assert (run.name, run.path) == ("run-0", "gs://bkt/sweep/run-0")
    assert run.stages == {"stage1": True, "stage2": False} and run.exit_code == 1
    gcs.remove("gs://bkt/sweep/run-0/logs/worker-0.exit")
    assert not gcs.exists("gs://bkt/sweep/run-0/logs/worker-0.exit")


def test_storage_is_imported_lazily():
    import subprocess
    import sys

    code = "import sys, orca_jax.tools.gcs, orca_jax.tools.launch, orca_jax.tools.sweep; print('google.cloud.storage' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
