"""Storage at a URI, for real: a moto S3 server on 127.0.0.1 (no mocks in the code under test), pyarrow's
S3 filesystem against it, a real sweep through the CLI with ``storage: s3://...``, ``sweep report`` of it."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from orchestrator import cli, config, storage

from .conftest import ROOT
from .test_report import make_sweep


# --- pure helpers ------------------------------------------------------------------------------------
def test_uri_helpers():
    uri = "s3://KEY:SECRET@bucket/runs/?endpoint_override=127.0.0.1:9000&scheme=http"
    assert storage.join(uri, "n") == "s3://KEY:SECRET@bucket/runs/n?endpoint_override=127.0.0.1:9000&scheme=http"
    assert storage.display(storage.join(uri, "n")) == "s3://bucket/runs/n?endpoint_override=127.0.0.1:9000&scheme=http"
    assert storage.name_of(storage.join(uri, "n")) == "n"
    assert storage.join("gs://b", "n") == "gs://b/n"
    assert [storage.is_uri(x) for x in ("runs", "/shared/sweeps", "~/r", "file:///tmp/r", "s3://b", "gs://b/x")] == [
        False,
        False,
        False,
        False,
        True,
        True,
    ]
    assert storage.target("file:///tmp/r", "n") == storage.Target(folder=Path("/tmp/r/n").resolve())
    assert storage.target("runs", "n").folder == Path("runs").resolve() / "n"
    a, b = storage.target(uri, "n"), storage.target("s3://bucket/runs?region=eu-west-1", "n")
    assert a.uri.endswith("/runs/n?endpoint_override=127.0.0.1:9000&scheme=http") and "SECRET" not in a.shown
    assert a.folder == b.folder and a.folder.name == "n"  # one local copy per place, whatever the options
    assert storage.target("s3://other/runs", "n").folder != a.folder


@pytest.mark.parametrize(
    "value",
    [
        "s3://b/runs",
        "s3://b/runs?region=eu-west-1",
        "gs://b/runs",
        "hdfs://nn:8020/r",
        "file:///tmp/r",
        "runs",
        "/shared/sweeps",
        "s3://b/runs?endpoint_override=127.0.0.1:9000&scheme=http",
    ],
)
def test_storage_values_pyarrow_opens_are_accepted_offline(value):
    assert storage.check(value) == value


@pytest.mark.parametrize(
    "value, why",
    [
        ("ftp://host/runs", "scheme ftp:// is not supported"),
        ("mock:///runs", "scheme mock:// is not supported"),
        ("s3://b/runs?bogus=1", "Unexpected query parameter"),
    ],
)
def test_bad_storage_uri_is_exit_2_one_line_naming_file_and_key(tmp_path, capsys, value, why):
    path = tmp_path / "bad.yaml"
    path.write_text(
        f"name: x\nworkload: digits_mlp\nmax_epochs: 2\nstorage: '{value}'\nspace: {{lr: {{log: [1e-3, 1e-1]}}}}\n"
    )
    with pytest.raises(config.ConfigError, match="storage"):
        config.load(path)
    assert cli.main(["run", str(path), "--no-check"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(f"sweep: error: {path}: storage: ") and why in err


# --- a real S3 (moto's server) -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def moto_endpoint():
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)  # the OS picks a free port
    server.start()
    host, port = server.get_host_and_port()  # the one it bound (no bind-close-reuse race)
    yield f"{host}:{port}"
    server.stop()


@dataclass
class S3:
    endpoint: str
    bucket: str
    fs: pafs.S3FileSystem

    def uri(self, path: str) -> str:
        return f"s3://{self.bucket}/{path}?endpoint_override={self.endpoint}&scheme=http"

    def files(self, path: str) -> dict[str, tuple[int, object]]:
        """Relative path -> (size, mtime) of every file under ``bucket/path``."""
        root = f"{self.bucket}/{path}"
        infos = self.fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
        return {i.path[len(root) + 1 :]: (i.size, i.mtime) for i in infos if i.type == pafs.FileType.File}

    def read(self, path: str) -> bytes:
        with self.fs.open_input_stream(f"{self.bucket}/{path}") as f:
            return f.read()

    def write(self, path: str, data: bytes) -> None:
        with self.fs.open_output_stream(f"{self.bucket}/{path}") as f:
            f.write(data)


@pytest.fixture
def s3(moto_endpoint, monkeypatch, tmp_path):
    """A fresh bucket; fake credentials in the environment (inherited by a ``sweep run`` subprocess and its
    Ray workers); the local copies under ``tmp_path/cache`` instead of ``~/.cache``."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    bucket = f"sweeps-{uuid.uuid4().hex[:8]}"
    fs = pafs.S3FileSystem(endpoint_override=moto_endpoint, scheme="http", allow_bucket_creation=True)
    fs.create_dir(bucket)
    return S3(moto_endpoint, bucket, pafs.S3FileSystem(endpoint_override=moto_endpoint, scheme="http"))


def test_upload_then_report_from_the_uri_reads_results_not_checkpoints(s3, tmp_path, capsys):
    local = make_sweep(tmp_path / "made" / "synth")
    (local / "sweep.yaml").write_text("name: synth\n")
    (local / ".trials.parquet.x.tmp").write_bytes(b"half written")  # never uploaded
    copied = storage.upload(local, s3.uri("runs/synth"))
    assert sorted(copied) == ["rounds.json", "sweep.yaml", "trials.parquet"]
    s3.write("runs/synth/abc123/checkpoint_000000/state.pt", b"x" * 1000)  # as Tune would keep it
    s3.write("runs/notes.txt", b"the user's")
    before = s3.files("runs")

    out = tmp_path / "out"
    assert cli.main(["report", s3.uri("runs/synth"), "--out", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    best = json.loads((out / "synth" / "best.json").read_text())
    assert lines[-2].startswith(f"chosen lr={best['lr']:.3g} ") and f"results: s3://{s3.bucket}/runs/synth" in lines[-2]
    assert lines[-1].startswith(f"report: {out / 'synth' / 'report.md'}")
    assert (out / "synth" / "val_loss_vs_lr.png").stat().st_size > 5000
    assert not (out / "synth" / "abc123").exists()  # no checkpoints downloaded
    assert s3.files("runs") == before  # the stored sweep is read, never written

    from orchestrator import build_report

    summary = build_report(s3.uri("runs/synth"))  # the library call; default: the local cache
    assert summary.folder == storage.cache_dir("reports", s3.uri("runs/synth")) / "synth"
    assert summary.lr == best["lr"] and str(tmp_path / "cache") in str(summary.folder)


def test_report_of_a_uri_without_results_is_exit_2_one_line(s3, capsys):
    s3.write("runs/empty/sweep.yaml", b"name: empty\n")
    assert cli.main(["report", s3.uri("runs/absent")]) == 2
    assert cli.main(["report", s3.uri("runs/empty")]) == 2
    assert cli.main(["report", "ftp://host/runs/x"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("sweep: error: ") for line in lines)
    assert "no such sweep folder" in lines[0] and "no results yet" in lines[1] and "cannot open storage" in lines[2]


def test_a_sweep_at_a_uri_is_claimed_once(s3, tmp_path):
    from orchestrator import folder as folders

    uri = s3.uri("runs/same")
    folder = tmp_path / "copy" / "same"
    folders.claim_uri(folder, uri, "first")
    assert s3.read("runs/same/sweep.yaml") == b"first"  # uploaded at once
    with pytest.raises(folders.SweepExistsError, match="already exists"):
        folders.claim_uri(tmp_path / "elsewhere" / "same", uri, "second")
    assert s3.read("runs/same/sweep.yaml") == b"first"
    s3.write("runs/taken/user-file.txt", b"mine")  # anything at URI/NAME: never written over
    with pytest.raises(folders.SweepExistsError, match="already exists"):
        folders.claim_uri(tmp_path / "t" / "taken", s3.uri("runs/taken"), "x")
    assert s3.files("runs/taken").keys() == {"user-file.txt"}


SWEEP = """\
name: {name}
workload: digits_mlp
max_epochs: 3
storage: '{storage}'
space:
  lr: {{log: [1e-3, 1e-1], per_decade: 1}}
  optimizer: sgd
  momentum: 0.9
  width: 32
asha: {{enabled: false}}
zoom: {{max_rounds: 1}}
"""


@pytest.mark.slow
def test_sweep_to_s3_then_report_from_it_then_refuse_a_second_run(s3, tmp_path, capsys):
    path = tmp_path / "s3.yaml"
    path.write_text(SWEEP.format(name="s3sweep", storage=s3.uri("runs")))
    s3.write("runs/notes.txt", b"the user's")
    cmd = [sys.executable, "-m", "orchestrator.cli", "run", str(path), "--no-check", "--quiet"]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=dict(os.environ), timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    last = run.stdout.strip().splitlines()[-1]
    assert last.startswith("chosen lr=") and f"results: s3://{s3.bucket}/runs/s3sweep?" in last

    stored = s3.files("runs/s3sweep")
    assert {
        "sweep.yaml",
        "trials.parquet",
        "rounds.json",
        "best.json",
        "report.md",
        "val_loss_vs_lr.png",
    } <= stored.keys()
    assert any(p.startswith("_sweep/events.out.tfevents") for p in stored)  # the sweep-level TensorBoard run
    assert "tuner.pkl" in stored  # Tune's experiment went straight to the URI
    assert s3.read("runs/s3sweep/sweep.yaml") == path.read_bytes()
    local = storage.target(s3.uri("runs"), "s3sweep").folder
    assert str(tmp_path / "cache") in str(local)
    assert (local / "trials.parquet").read_bytes() == s3.read("runs/s3sweep/trials.parquet")
    best = json.loads(s3.read("runs/s3sweep/best.json"))
    assert 1e-3 <= best["lr"] <= 1e-1

    # `sweep report URI/NAME` reads it back: the same choice
    assert cli.main(["report", s3.uri("runs/s3sweep"), "--out", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-2].startswith(f"chosen lr={best['lr']:.3g} ")
    assert json.loads((tmp_path / "rep" / "s3sweep" / "best.json").read_text())["lr"] == best["lr"]
    assert s3.files("runs/s3sweep") == stored

    # a second sweep with the same name is refused; nothing stored is touched
    again = subprocess.run(cmd[:-1], capture_output=True, text=True, cwd=ROOT, env=dict(os.environ), timeout=300)
    assert again.returncode == 2, again.stderr[-3000:]
    assert again.stderr.strip().count("\n") == 0 and "already exists" in again.stderr
    assert s3.files("runs/s3sweep") == stored and s3.read("runs/notes.txt") == b"the user's"


# Ctrl-C at a URI (results so far uploaded) and --resume from a machine without the local copy:
# test_secrets' sweep, which has the keys in its URI
