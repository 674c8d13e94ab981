"""``sweep tensorboard RUN``: the real TensorBoard server (a subprocess) over a sweep folder, and its
subcommand; the page a user opens first (``first_page``), and screenshots of pages by a headless Chromium
(``screenshot``). No Ray: the CLI registers it without importing Tune."""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.parse
from pathlib import Path

from orchestrator import results
from orchestrator.errors import ExitCode, TensorBoardError
from orchestrator.tbnames import tag_of

_URL = re.compile(r"(https?://\S+)")


class TensorBoardServer:
    """A ``tensorboard`` subprocess over one folder; ``url`` once it serves. Its output is drained by a
    thread (the last lines are kept in ``tail``) so that a full pipe never blocks it."""

    def __init__(self, process: subprocess.Popen, echo: bool = False):
        self.process = process
        self.echo = echo
        self.url: str | None = None
        self.tail: collections.deque[str] = collections.deque(maxlen=40)
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            line = line.rstrip("\n")
            self.tail.append(line)
            if self.url is None:
                m = _URL.search(line)
                if m and "TensorBoard" in line:
                    self.url = m.group(1)
                    self._ready.set()
                    continue
            if self.echo and self.url is not None:
                print(line, file=sys.stderr, flush=True)
        self._ready.set()  # exited

    def wait_ready(self, timeout: float) -> str:
        if not self._ready.wait(timeout):
            self.stop()
            raise TensorBoardError(f"tensorboard did not start within {timeout:.0f} s")
        if self.url is None:
            self.process.wait(timeout=10)
            self._reader.join(timeout=5)
            raise TensorBoardError(f"tensorboard exited with code {self.process.returncode}: {self.reason()}")
        return self.url

    def reason(self) -> str:
        lines = [line.strip() for line in self.tail if line.strip()]
        for line in reversed(lines):
            if any(w in line.lower() for w in ("error", "could not", "already in use", "no such")):
                return line
        return lines[-1] if lines else "no output"

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        self._reader.join(timeout=5)

    def __enter__(self) -> TensorBoardServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def launch(
    folder: str | Path, host: str = "127.0.0.1", port: int | None = None, timeout: float = 90.0, echo: bool = False
) -> TensorBoardServer:
    """Start ``tensorboard --logdir FOLDER --host HOST --port PORT`` and wait until it serves.

    ``port=None``: 6006, or the next free port after it (TensorBoard's "default"); ``0``: any free port.
    Raises ``TensorBoardError`` (one line) if the folder is missing or the server does not come up."""
    folder = Path(folder).expanduser()
    if not folder.exists():
        raise TensorBoardError(f"{folder}: no such sweep folder (expected STORAGE/NAME, e.g. runs/digits-lr)")
    if not folder.is_dir():
        raise TensorBoardError(f"{folder}: not a folder (expected a sweep folder, e.g. runs/digits-lr)")
    if port is not None and not 0 <= port <= 65535:
        raise TensorBoardError(f"port={port}: expected 0..65535")
    cmd = [
        sys.executable,
        "-m",
        "tensorboard.main",
        "--logdir",
        str(folder.resolve()),
        "--host",
        host,
        "--port",
        "default" if port is None else str(port),
    ]
    process = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    server = TensorBoardServer(process, echo=echo)
    server.wait_ready(timeout)
    return server


def first_page(url: str, metric: str = "val_loss") -> str:
    """The page to open first: TensorBoard's Time Series with the validation and training loss of every
    trial, the sweep's lowest metric so far and the learning rate per epoch pinned on top, unsmoothed."""
    pins = [
        {"plugin": "scalars", "tag": tag}
        for tag in (
            tag_of(metric, metric),
            tag_of("train_loss", metric),
            f"sweep/best_{metric}",
            tag_of("lr_epoch", metric),
        )
    ]
    query = urllib.parse.urlencode({"smoothing": "0", "pinnedCards": json.dumps(pins, separators=(",", ":"))})
    return f"{url.rstrip('/')}/?{query}#timeseries"


def hparams_page(url: str) -> str:
    """The HParams tab: one row per trial, the searched values and each metric at the last epoch."""
    return f"{url.rstrip('/')}/#hparams"


def metric_of(folder: Path) -> str:
    """The sweep's metric from ``rounds.json`` (written when the sweep ends), else ``val_loss``."""
    try:
        stored = results.read_json(folder / "rounds.json") or {}
    except results.ResultsError:
        stored = {}
    metric = stored.get("metric") if isinstance(stored, dict) else None
    return metric if isinstance(metric, str) and metric else "val_loss"


BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_browser() -> str | None:
    """The first Chromium-like browser on PATH (``BROWSERS``), or None."""
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


def screenshot(
    url: str,
    path: str | Path,
    browser: str | None = None,
    size: tuple[int, int] = (1600, 1000),
    wait_ms: int = 20000,
    timeout: float = 120.0,
) -> Path:
    """Save a PNG of ``url`` as a headless Chromium shows it after ``wait_ms`` of page time. Charts are
    drawn as SVG (TensorBoard's ``forceSVG``: headless Chromium draws no WebGL). Raises
    ``TensorBoardError`` (one line) without a browser or when it writes no image."""
    browser = browser or find_browser()
    if browser is None:
        raise TensorBoardError(
            f"no headless browser found (looked for {', '.join(BROWSERS)} on PATH); on Debian: apt-get install chromium"
        )
    parts = urllib.parse.urlsplit(url)
    query = "&".join(q for q in (parts.query, "forceSVG=true") if q)
    target = urllib.parse.urlunsplit(parts._replace(query=query))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sweep-browser") as profile:
        cmd = [
            browser,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--no-first-run",
            f"--user-data-dir={profile}",
            f"--window-size={size[0]},{size[1]}",
            f"--virtual-time-budget={wait_ms}",
            f"--screenshot={path.resolve()}",
            target,
        ]
        try:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TensorBoardError(f"{browser}: no screenshot of {url} within {timeout:.0f} s") from None
    if not path.is_file() or path.stat().st_size == 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise TensorBoardError(f"{browser}: no screenshot of {url} (exit {proc.returncode}: {last})")
    return path


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a port number 0..65535") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value}: expected a port number 0..65535")
    return value


def cmd_tensorboard(args: argparse.Namespace) -> int:
    """``sweep tensorboard RUN``: serve TensorBoard over the sweep folder until Ctrl-C."""
    folder = Path(args.folder)
    try:
        server = launch(folder, host=args.host, port=args.port, echo=getattr(args, "verbose", False))
    except TensorBoardError as exc:
        print(f"sweep: error: {exc}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    if not any(folder.rglob("events.out.tfevents*")):
        print(
            f"sweep: note: {folder} holds no TensorBoard events yet; they appear as the sweep writes them",
            file=sys.stderr,
            flush=True,
        )
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"sweep: note: serving on {args.host}: anyone who can reach it can read the logs",
            file=sys.stderr,
            flush=True,
        )
    print(f"TensorBoard: {server.url}  (logdir {folder}; Ctrl-C to stop)", flush=True)
    print(f"open first: {first_page(server.url or '', metric_of(folder))}", flush=True)
    previous = _on_sigterm_raise()
    try:
        code = server.process.wait()
    except KeyboardInterrupt:
        return ExitCode.OK
    finally:
        server.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if code not in (0, -signal.SIGINT, -signal.SIGTERM):
        print(f"sweep: error: tensorboard exited with code {code}: {server.reason()}", file=sys.stderr)
        return ExitCode.FAILED
    return ExitCode.OK


def _on_sigterm_raise():
    """Turn SIGTERM into KeyboardInterrupt, so that the TensorBoard child is stopped too; returns the old
    handler (None off the main thread, where signals cannot be set)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``sweep tensorboard RUN [--port N] [--host 127.0.0.1]`` to the CLI's subparsers."""
    p = subparsers.add_parser(
        "tensorboard",
        help="serve TensorBoard over a sweep folder (127.0.0.1 unless --host)",
        description="Start TensorBoard over a sweep folder (while it runs or after) and "
        "print its URL and the page to open first (the losses of every trial, "
        "pinned). Trial runs (named 'r<round> lr=<rate> ... <id>') hold "
        "per-epoch losses, the learning rate and the HParams table; the run "
        "'_sweep' holds the sweep as a whole and the chosen rate.",
    )
    p.add_argument("folder", metavar="RUN", help="a sweep folder, e.g. runs/digits-lr")
    p.add_argument(
        "--port", type=_port, default=None, help="port (default: 6006, or the next free one; 0: any free port)"
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to serve on (default: 127.0.0.1, this machine only; 0.0.0.0 exposes it)",
    )
    p.add_argument("--verbose", action="store_true", help="also show TensorBoard's own log lines")
    p.set_defaults(func=cmd_tensorboard)
    return p
