"""Notifications, for real: a local HTTP server (http.server in a thread) and a real command; a sweep that
ends, fails or is stopped sends once, and a notification that fails never fails the sweep."""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from orchestrator import config
from orchestrator.notify import Event, Notifier, shown_url


class Hook:
    """A webhook on 127.0.0.1 that records each POST and answers ``status`` after ``delay`` seconds."""

    def __init__(self, status: int = 200, delay: float = 0.0) -> None:
        self.posts: list[tuple[str, dict]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.posts.append((self.path, json.loads(body)))
                time.sleep(delay)
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hooks/T000/SECRETPATH?token=SECRETQ") -> str:
        return f"http://user:SECRETPW@127.0.0.1:{self.server.server_port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.close()


def test_url_and_command_get_the_one_line_summary(hook, tmp_path):
    out = tmp_path / "got.txt"
    script = (
        "import os,sys; open(sys.argv[1],'w').write(sys.stdin.read()+'|'+os.environ['SWEEP_SUMMARY']+'|'+"
        "os.environ['SWEEP_EVENT'])"
    )
    n = Notifier(url=hook.url(), command=(sys.executable, "-c", script, str(out)))
    assert n.send(Event.FINISHED, "digits-lr", "chosen lr=0.03\n 40 epochs") == []
    path, body = hook.posts[0]
    assert len(hook.posts) == 1 and path == "/hooks/T000/SECRETPATH?token=SECRETQ"
    assert body == {"event": "finished", "sweep": "digits-lr", "text": "chosen lr=0.03 40 epochs"}
    assert out.read_text() == "chosen lr=0.03 40 epochs\n|chosen lr=0.03 40 epochs|finished"
    # a shell would expand this; an argument list does not
    n = Notifier(
        command=(sys.executable, "-c", "import sys; open(sys.argv[1],'w').write(sys.argv[2])", str(out), "$HOME;`id`")
    )
    assert n.send(Event.FAILED, "x", "boom") == [] and out.read_text() == "$HOME;`id`"


def test_failures_are_one_line_never_raise_and_never_show_the_urls_credentials(tmp_path, capsys):
    bad = Hook(status=500)
    try:
        failures = Notifier(url=bad.url()).send(Event.STOPPED, "s", "interrupted")
    finally:
        bad.close()
    assert failures == [f"POST to http://127.0.0.1:{bad.server.server_port}/... answered HTTP 500"]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("[sweep] notify: POST to http://127.0.0.1:")
    assert "SECRET" not in err
    # nothing listening; a command that fails; one that does not exist
    closed = Notifier(url=f"http://u:SECRETPW@127.0.0.1:{bad.server.server_port}/x/SECRETPATH?sig=SECRETQ")
    failures = closed.send(Event.FAILED, "s", "x")
    assert len(failures) == 1 and failures[0].startswith("POST to http://127.0.0.1:") and "SECRET" not in failures[0]
    failures = Notifier(command=(sys.executable, "-c", "import sys; sys.exit('no route')")).send(Event.FAILED, "s", "x")
    assert failures == [f"command {sys.executable.rsplit('/', 1)[-1]} exited 1: no route"]
    failures = Notifier(command=(str(tmp_path / "absent"),)).send(Event.FAILED, "s", "x")
    assert failures == ["command absent could not run (No such file or directory)"]
    assert "SECRET" not in capsys.readouterr().err
    assert shown_url("https://hooks.slack.com/services/T/B/X") == "https://hooks.slack.com/..."


def test_a_slow_hook_holds_the_caller_at_most_wait_seconds():
    slow = Hook(delay=1.5)
    try:
        start = time.monotonic()
        Notifier(url=slow.url("/")).send(Event.FINISHED, "s", "done", wait=0.3)
        assert time.monotonic() - start < 1.2
        slow.thread.join(0)  # the POST arrived; its answer is still on its way
        assert len(slow.posts) == 1
    finally:
        slow.close()


def test_notify_config_is_checked():
    base = {"name": "n", "workload": "digits_mlp", "max_epochs": 3, "space": {"lr": {"log": [1e-3, 1e-1]}}}
    cfg = config.parse({**base, "notify": {"url": "https://example.org/hook", "command": ["notify-send", "sweep"]}})
    assert Notifier.of(cfg) == Notifier(url="https://example.org/hook", command=("notify-send", "sweep"))
    assert Notifier.of(config.parse(base)) == Notifier()  # the null notifier
    for bad, key in (
        ({"url": "ftp://x/y"}, "notify.url"),
        ({"command": []}, "notify.command"),
        ({"command": "echo hi"}, "notify.command"),
    ):
        with pytest.raises(config.ConfigError, match=key):
            config.parse({**base, "notify": bad})
    with pytest.raises(ValueError, match="url="):
        Notifier(url="file:///etc/passwd")


@pytest.mark.slow
def test_a_real_sweep_notifies_once_when_it_ends_and_when_it_fails(local_ray, tmp_path, hook):
    from orchestrator import run_sweep

    data = {
        "name": "note",
        "workload": "digits_mlp",
        "max_epochs": 2,
        "storage": str(tmp_path / "runs"),
        "space": {"lr": {"log": [1e-2, 1e-1], "per_decade": 1}, "optimizer": "sgd", "width": 8},
        "asha": {"enabled": False},
        "zoom": {"max_rounds": 1},
        "notify": {"url": hook.url()},
    }
    summary = run_sweep(config.parse(data), quiet=True)
    assert [b["event"] for _, b in hook.posts] == ["finished"]
    assert hook.posts[0][1]["text"] == " ".join(f"note: {summary.line()}".split())  # one line, spaces collapsed
    failing = {
        **data,
        "name": "fails",
        "workload": "tests.faulty_workloads:raises_at_1e_3",
        "space": {"lr": {"log": [1e-3, 1e-3], "per_decade": 1}, "optimizer": "sgd", "width": 8},
        "notify": {"url": hook.url(), "command": [sys.executable, "-c", "import sys; sys.exit(3)"]},
    }
    with pytest.raises(Exception):  # noqa: B017 - whatever the sweep raises, it is its own error, not notify's
        run_sweep(config.parse(failing), quiet=True)
    assert [b["event"] for _, b in hook.posts] == ["finished", "failed"]
    assert hook.posts[1][1]["text"].startswith(f"{tmp_path / 'runs' / 'fails'}: sweep failed")
