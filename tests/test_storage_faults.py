"""Storage at a URI when things go wrong (a moto S3 server, real pyarrow): a report download next to a local
sweep of the same name, stale local copies from an earlier run, uploads to a bucket that is gone or a
server that is down; no credential in any StorageError."""

from __future__ import annotations

import hashlib
import logging
import socket
import urllib.parse
from pathlib import Path

import pytest

from orchestrator import cli, folder as folders, results, storage

from . import test_storage
from .test_report import make_sweep

moto_endpoint, s3 = test_storage.moto_endpoint, test_storage.s3  # fixtures

KEY_ID = "AKIAFAULTSKEYID0042"
SECRET = "f4ults/SeCrEt+Key=0042"
CREDS = f"{KEY_ID}:{urllib.parse.quote(SECRET, safe='')}@"
FORMS = (KEY_ID, SECRET, urllib.parse.quote(SECRET, safe=""))


def with_creds(uri: str) -> str:
    return uri.replace("s3://", "s3://" + CREDS, 1)


def snapshot(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# --- sweep report URI --out DIR ---------------------------------------------------------------------
def test_report_download_never_writes_into_a_local_sweep_of_the_same_name(s3, tmp_path, capsys):
    local = make_sweep(tmp_path / "runs" / "synth")
    (local / "sweep.yaml").write_text("name: synth  # the user's own sweep\n")
    (local / "preflight.json").write_text("[]")
    before = snapshot(local)
    stored = make_sweep(tmp_path / "elsewhere" / "synth", train_factor=0.8)
    (stored / "sweep.yaml").write_text("name: synth  # the stored one\n")
    storage.upload(stored, s3.uri("runs/synth"))

    assert cli.main(["report", with_creds(s3.uri("runs/synth")), "--out", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        f"sweep: error: {local}: already exists and is not a copy of s3://{s3.bucket}/runs/synth?"
    )
    assert "nothing was written" in err and not [f for f in FORMS if f in err]
    assert snapshot(local) == before  # sweep.yaml, preflight.json, rounds.json, trials.parquet untouched

    # a fresh folder is created, marked, and refreshed by the next download of the same URI
    out = tmp_path / "reports"
    for _ in range(2):
        assert cli.main(["report", s3.uri("runs/synth"), "--out", str(out)]) == 0
    copy = out / "synth"
    assert (copy / "sweep.yaml").read_text() == "name: synth  # the stored one\n" and (copy / "report.md").exists()
    assert (copy / storage.DOWNLOADED).read_text().strip() == storage.display(s3.uri("runs/synth"))
    # ... but not by a download of another URI whose sweep has the same name
    capsys.readouterr()
    other = make_sweep(tmp_path / "other" / "synth")
    storage.upload(other, s3.uri("other/synth"))
    assert cli.main(["report", s3.uri("other/synth"), "--out", str(out)]) == 2
    assert "is not a copy of" in capsys.readouterr().err
    assert (copy / "sweep.yaml").read_text() == "name: synth  # the stored one\n"


# --- stale local copies -----------------------------------------------------------------------------
def test_a_new_sweep_at_a_uri_starts_its_local_copy_afresh(s3, tmp_path):
    uri = s3.uri("runs")
    folder = storage.target(uri, "again").folder  # ~/.cache/sweep/staging/...: left by an earlier run
    make_sweep(folder)
    (folder / "best.json").write_text("{}")
    (folder / "_sweep").mkdir()
    (folder / "_sweep" / "events.out.tfevents.1.old").write_bytes(b"old run")
    folders.claim_uri(folder, storage.join(uri, "again"), "name: again\n")
    assert snapshot(folder).keys() == {"sweep.yaml"}
    assert s3.files("runs/again").keys() == {"sweep.yaml"}  # nothing stale reached the storage


def test_a_resume_replaces_stale_inputs_of_the_local_copy_with_the_stored_ones(s3, tmp_path):
    uri = s3.uri("runs/res")
    stored = make_sweep(tmp_path / "stored" / "res")
    (stored / "sweep.yaml").write_text("name: res\n")
    storage.upload(stored, uri)  # sweep.yaml, trials.parquet, rounds.json; no preflight.json
    folder = storage.target(s3.uri("runs"), "res").folder
    make_sweep(folder, train_factor=0.9)  # an earlier run's copy: other results
    (folder / "sweep.yaml").write_text("name: res  # stale\n")
    (folder / "preflight.json").write_text("[]")
    assert sorted(storage.download(uri, folder)) == ["rounds.json", "sweep.yaml", "trials.parquet"]
    now = snapshot(folder)
    assert "preflight.json" not in now  # absent at the URI: removed, never mixed in
    assert {k: now[k] for k in ("sweep.yaml", "rounds.json", results.TRIALS)} == {
        k: v for k, v in snapshot(stored).items() if k in ("sweep.yaml", "rounds.json", results.TRIALS)
    }


# --- failed uploads, and no credential in a StorageError --------------------------------------------
@pytest.fixture
def stopped_endpoint():
    """An S3 endpoint whose server was started and then stopped (connections refused)."""
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    server.stop()
    return f"127.0.0.1:{port}"


@pytest.mark.parametrize("gone", ["bucket removed", "server stopped"])
def test_a_failed_upload_is_one_line_naming_the_kept_local_copy(s3, stopped_endpoint, tmp_path, capsys, gone):
    folder = make_sweep(tmp_path / "staging" / "up")
    (folder / "sweep.yaml").write_text("name: up\n")
    before = snapshot(folder)
    if gone == "bucket removed":
        import pyarrow.fs as pafs

        pafs.S3FileSystem(endpoint_override=s3.endpoint, scheme="http", allow_bucket_deletion=True).delete_dir(
            s3.bucket
        )
        uri = with_creds(s3.uri("runs/up"))
    else:
        uri = with_creds(s3.uri("runs/up")).replace(s3.endpoint, stopped_endpoint)
    with pytest.raises(storage.StorageError) as info:
        storage.upload(folder, uri)
    message = str(info.value)
    assert "\n" not in message and message.startswith(storage.display(uri) + ": upload failed (")
    assert message.endswith(f"; the results are in {folder}")
    assert not [f for f in FORMS if f in message]
    assert snapshot(folder) == before  # the local copy is kept as it was
    folders.publish(folder, uri, strict=False)  # on the way out with another error: printed, not raised
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "upload failed" in err and str(folder) in err
    assert not [f for f in FORMS if f in err]


def test_no_storage_error_carries_a_credential(s3, stopped_endpoint, tmp_path):
    down = with_creds(s3.uri("runs/x")).replace(s3.endpoint, stopped_endpoint)
    query = s3.uri("runs/x") + f"&secret_key={urllib.parse.quote(SECRET, safe='')}&session_token={KEY_ID}"
    calls = {
        "open (option pyarrow rejects)": lambda: storage.open_uri(query),
        "exists (server down)": lambda: storage.exists(down),
        "download (server down)": lambda: storage.download(down, tmp_path / "d"),
        "fetch (server down)": lambda: storage.fetch(down, tmp_path / "f"),
    }
    messages = {}
    for what, call in calls.items():
        with pytest.raises(storage.StorageError) as info:
            call()
        messages[what] = str(info.value)
    assert all("\n" not in m and m.startswith("s3://") for m in messages.values()), messages
    assert {k: [f for f in FORMS if f in m] for k, m in messages.items() if any(f in m for f in FORMS)} == {}
