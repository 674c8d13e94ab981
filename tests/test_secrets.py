"""No credential from a storage URI appears in any output, log, job metadata or stored file: a real sweep
to a moto S3 server with the keys in the URI, then every file in the bucket, the local copy, the embedded
Ray's logs and every printed line are searched for them."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestrator import cli, credfs, storage

from . import test_storage
from .conftest import ROOT

SWEEP = test_storage.SWEEP
moto_endpoint, s3 = test_storage.moto_endpoint, test_storage.s3  # fixtures

KEY_ID = "AKIASWEEPKEYID0042"
SECRET = "sw33p/SeCrEt+Key=0042xyz"  # '/', '+', '=' : percent-encoded in the URI
CREDS = f"{KEY_ID}:{urllib.parse.quote(SECRET, safe='')}@"
FORMS = (KEY_ID, SECRET, urllib.parse.quote(SECRET, safe=""), urllib.parse.quote_plus(SECRET))


def with_creds(uri: str) -> str:
    return uri.replace("s3://", "s3://" + CREDS, 1)


def leaks(data: bytes | str) -> list[str]:
    text = data.decode("latin-1") if isinstance(data, bytes) else data
    return [f for f in FORMS if f in text]


# --- pure -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "uri, public, secrets",
    [
        (
            "s3://AK:S%2FK@b/runs?endpoint_override=h:9&scheme=http",
            "s3://b/runs?endpoint_override=h:9&scheme=http",
            {"AK", "S%2FK", "S/K"},
        ),
        (
            "gs://b/x?access_token=tok.en&retry_limit_seconds=3",
            "gs://b/x?access_token=***&retry_limit_seconds=3",
            {"tok.en"},
        ),
        (
            "abfs://cont:pw123@acct.dfs.core.windows.net/p?client_id=c&client_secret=cs%3D1&tenant_id=t",
            "abfs://cont:***@acct.dfs.core.windows.net/p?client_id=c&client_secret=***&tenant_id=t",
            {"pw123", "cs%3D1", "cs=1"},
        ),
        (
            "s3://b/x?access_key=A1&secret_key=S1&session_token=T1&password=P1&sig=G1&sas_token=Q1",
            "s3://b/x?access_key=***&secret_key=***&session_token=***&password=***&sig=***&sas_token=***",
            {"A1", "S1", "T1", "P1", "G1", "Q1"},
        ),
        ("/shared/sweeps", "/shared/sweeps", set()),
    ],
)
def test_split_masks_every_credential_form(uri, public, secrets):
    assert storage.split(uri) == (public, tuple(sorted(secrets, key=lambda v: (-len(v), v))))
    assert storage.display(uri) == public
    assert all(s not in storage.scrub(f"it failed at {uri}", uri) for s in secrets if len(s) >= 3)


def test_redact_masks_lookalikes_in_any_text():
    text = "results: s3://AK:SK@b/x?endpoint_override=h&secret_key=abc and token=xyz, sig=q1 (client_secret=zz)"
    assert storage.redact(text) == (
        "results: s3://***@b/x?endpoint_override=h&secret_key=*** and token=***, sig=*** (client_secret=***)"
    )


def test_a_rejected_storage_uri_is_one_line_without_its_secrets(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(
        f"name: x\nworkload: digits_mlp\nmax_epochs: 2\n"
        f"storage: 's3://{CREDS}b/runs?secret_key=LEAKME123&bogus=1'\n"
        f"space: {{lr: {{log: [1e-3, 1e-1]}}}}\n"
    )
    assert cli.main(["run", str(path), "--no-check"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pyarrow cannot open it" in err
    assert not leaks(err) and "LEAKME123" not in err


def test_the_filesystem_tune_gets_pickles_without_credentials_and_workers_find_them(local_ray, s3):
    uri = with_creds(s3.uri("runs/x"))
    path, fs = credfs.for_tune(uri)
    assert path == f"{s3.bucket}/runs/x" and fs is not None
    blob = pickle.dumps(fs)
    assert not leaks(blob) and s3.endpoint.encode() in blob
    credfs._KNOWN.clear()  # this process forgets: the cluster's key-value store still has them

    @local_ray.remote
    def in_a_worker(blob: bytes) -> tuple[str, list[str]]:
        from pyarrow.fs import FileSelector

        fs = pickle.loads(blob)
        with fs.open_output_stream(f"{path}/from-worker.txt") as f:
            f.write(b"ok")
        return credfs._KNOWN[fs.handler.key], sorted(i.base_name for i in fs.get_file_info(FileSelector(path)))

    full, names = local_ray.get(in_a_worker.remote(blob))
    assert full == f"s3://{CREDS}{s3.bucket}?endpoint_override={s3.endpoint}&scheme=http"  # from the cluster
    assert names == ["from-worker.txt"] and s3.read("runs/x/from-worker.txt") == b"ok"
    credfs.forget(uri)
    with pytest.raises(storage.StorageError, match="credentials of this storage URI are not known") as info:
        credfs._KNOWN.clear()
        pickle.loads(blob).get_file_info(path)
    assert not leaks(str(info.value))
    assert path == credfs.for_tune(uri)[0]  # remembered again for the tests that follow


def test_storage_errors_name_the_uri_without_credentials(s3, tmp_path):
    missing = with_creds(s3.uri("runs/x")).replace(s3.bucket, "no-such-bucket-" + s3.bucket)
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "a.txt").write_text("x")
    with pytest.raises(storage.StorageError) as info:
        storage.upload(tmp_path / "f", missing)
    message = str(info.value)
    assert "\n" not in message and "upload failed" in message and f"the results are in {tmp_path / 'f'}" in message
    assert not leaks(message) and "no-such-bucket" in message


# --- a real sweep -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_sweep_with_keys_in_its_uri_interrupted_and_resumed_elsewhere_never_writes_or_prints_them(
    s3, tmp_path, monkeypatch, request
):
    """One sweep to ``s3://KEY:SECRET@...``: Ctrl-C in round 0 uploads the results so far; a second run is
    refused; ``--resume`` from the URI on a machine without the local copy finishes every trial. No stored
    file, local file, Ray log or printed line holds a key."""
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)  # the keys in the URI are the only ones
    temp = Path(tempfile.mkdtemp(prefix="swk-", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    request.addfinalizer(lambda: shutil.rmtree(temp, ignore_errors=True))
    monkeypatch.setenv("TMPDIR", str(temp))  # the embedded Ray's session logs land here: searched below
    uri = with_creds(s3.uri("runs"))
    path = tmp_path / "creds.yaml"
    # 20 epochs: round 0 still trains when Ctrl-C comes; a checkpoint in the bucket: the sign that it does
    path.write_text(
        SWEEP.format(name="keyed", storage=uri).replace("max_epochs: 3", "max_epochs: 20") + "checkpoint_every: 1\n"
    )
    cmd = [sys.executable, "-m", "orchestrator.cli", "run", str(path), "--no-check"]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=dict(os.environ),
        start_new_session=True,
    )
    head = []
    try:
        for line in proc.stdout:
            head.append(line)
            if line.startswith("[sweep] round 0"):
                break
        deadline = time.monotonic() + 300  # until a trial has saved an epoch in the bucket
        while not any(p.endswith("/state.pt") for p in s3.files("runs/keyed")):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"no trial checkpoint in the bucket before the sweep ended or 300 s passed ({proc.poll()})")
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, storage.scrub(err[-3000:], uri)
    assert err.strip().splitlines()[-1].startswith(f"sweep: error: s3://{s3.bucket}/runs/keyed?")
    printed = ["".join(head), out, err]
    stored = s3.files("runs/keyed")
    assert {"sweep.yaml", "trials.parquet", "rounds.json", "tuner.pkl"} <= stored.keys()  # uploaded on the way out
    assert "best.json" not in stored
    assert any("/checkpoint_" in p for p in stored)  # the workers wrote checkpoints with the keys
    sweep_yaml = s3.read("runs/keyed/sweep.yaml")
    assert f"storage: 's3://***:***@{s3.bucket}/runs?endpoint_override=" in sweep_yaml.decode()

    # a second run is refused in one line, naming the URI without its keys
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=dict(os.environ), timeout=300)
    assert again.returncode == 2 and "already exists" in again.stderr and not leaks(again.stderr + again.stdout)

    # `--resume` with the keys in the config, on a machine without the local copy: Tune is restored from the
    # URI through the key-free filesystem and every trial finishes, none lost in the move
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "other-machine"))
    resumed = subprocess.run(
        cmd + ["--resume"], capture_output=True, text=True, cwd=ROOT, env=dict(os.environ), timeout=600
    )
    assert resumed.returncode == 0, storage.scrub(resumed.stderr[-3000:], uri)
    assert f"results: s3://{s3.bucket}/runs/keyed?" in resumed.stdout.strip().splitlines()[-1]
    printed += [resumed.stdout, resumed.stderr]
    assert json.loads(s3.read("runs/keyed/best.json"))["lr"] > 0
    assert s3.read("runs/keyed/sweep.yaml") == sweep_yaml
    rows = pq.read_table(pa.BufferReader(s3.read("runs/keyed/trials.parquet"))).to_pylist()
    last: dict[str, int] = {}
    for r in rows:
        last[r["trial_id"]] = max(last.get(r["trial_id"], 0), r["epoch"] or 0)
    assert len(last) == 3 and set(last.values()) == {20}

    stored = s3.files("runs/keyed")
    found = {p: leaks(s3.read(f"runs/keyed/{p}")) for p in stored}
    local = [
        p for where in (tmp_path / "cache", tmp_path / "other-machine", temp) for p in where.rglob("*") if p.is_file()
    ]
    # both local copies, and what Ray left of its sessions (removed when a run ends)
    assert len(local) >= 5 and any(tmp_path / "other-machine" in p.parents for p in local)
    found.update({str(p): leaks(p.read_bytes()) for p in local})
    found.update({f"printed[{i}]": leaks(text) for i, text in enumerate(printed)})
    assert {k: v for k, v in found.items() if v} == {}


def test_job_metadata_and_status_show_the_uri_without_keys():
    from cluster import jobs, package

    folder, warning = package.results_folder(f"s3://{CREDS}b/runs?endpoint_override=h:9&token=tok123", "n")
    assert folder == "s3://b/runs/n?endpoint_override=h:9&token=***" and warning is None
    info = jobs.public_info(
        jobs.JobInfo(
            job_id="j",
            status="FAILED",
            message=f"failed writing s3://{CREDS}b/runs/n?secret_key=abc123",
            metadata={"sweep_folder": f"s3://{CREDS}b/runs/n", "sweep_config": "c.yaml"},
        )
    )
    assert info.metadata == {"sweep_folder": "s3://***@b/runs/n", "sweep_config": "c.yaml"}
    assert not leaks(info.message) and "abc123" not in info.message and info.job_id == "j"
