"""Tell someone, once, that a sweep ended, failed or was stopped (``notify: {url: ..., command: [...]}``).

- ``url``: an HTTP POST of JSON ``{"event", "sweep", "text"}`` (``text``: the one-line summary; Slack and
  Mattermost incoming webhooks show it as it is), with ``urllib`` and a 5 s timeout;
- ``command``: an argument list run without a shell, the summary on its stdin and in ``SWEEP_SUMMARY``
  (and the event in ``SWEEP_EVENT``), killed after 5 s.

A notification never fails or holds up the sweep: each one runs in a thread that the caller waits for at
most ``wait`` seconds; a failure is logged in one line on stderr. A URL is shown in logs as its scheme and
host only: a webhook's path and query are its credentials. Imports neither Ray nor torch.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from enum import Enum

from orchestrator import storage

TIMEOUT_S = 5.0


class Event(str, Enum):
    FINISHED = "finished"
    FAILED = "failed"
    STOPPED = "stopped"  # interrupted (Ctrl-C, a stop): results so far saved, --resume continues it


@dataclass(frozen=True)
class Notifier:
    """Where notifications go; ``Notifier()`` (no url, no command) is the null notifier: it sends nothing."""

    url: str | None = None
    command: tuple[str, ...] | None = None
    timeout_s: float = TIMEOUT_S

    def __post_init__(self) -> None:
        if self.url is not None and urllib.parse.urlsplit(self.url).scheme not in ("http", "https"):
            raise ValueError(f"url={shown_url(self.url)}: expected an http:// or https:// URL")
        if self.command is not None and (not self.command or not all(isinstance(a, str) for a in self.command)):
            raise ValueError(f"command={self.command!r}: expected a non-empty list of strings")
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s={self.timeout_s}: expected > 0")

    @classmethod
    def of(cls, cfg) -> Notifier:
        """The notifier of a ``SweepConfig`` (its ``notify:``), the null one when it has none."""
        n = getattr(cfg, "notify", None)
        if n is None:
            return cls()
        return cls(url=n.url, command=tuple(n.command) if n.command else None)

    def send(self, event: Event, sweep: str, summary: str, wait: float | None = None) -> list[str]:
        """Send ``summary`` (one line) to the URL and the command, each in its own daemon thread, waiting
        for them at most ``wait`` seconds (default: ``timeout_s`` + 1). Returns the failures, one line
        each (also printed on stderr); a notification still running after ``wait`` is left to finish."""
        line = " ".join(summary.split())
        failures: list[str] = []
        jobs = ([lambda: self._post(event, sweep, line)] if self.url else []) + (
            [lambda: self._run(event, line)] if self.command else []
        )
        threads = [threading.Thread(target=_logged, args=(job, failures), daemon=True) for job in jobs]
        for t in threads:
            t.start()
        limit = self.timeout_s + 1 if wait is None else wait
        for t in threads:
            t.join(limit)
        return list(failures)

    def _post(self, event: Event, sweep: str, line: str) -> None:
        if self.url is None:
            return
        body = json.dumps({"event": event.value, "sweep": sweep, "text": line}).encode()
        parts = urllib.parse.urlsplit(self.url)
        headers = {"Content-Type": "application/json"}
        if parts.username is not None:  # user:password@ in the URL: sent as HTTP basic auth, as curl does
            pair = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        url = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
        request = urllib.request.Request(url, data=body, method="POST", headers=headers)
        where = shown_url(self.url)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # http(s): __post_init__
                response.read(1024)
        except urllib.error.HTTPError as exc:
            raise NotifyError(f"POST to {where} answered HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise NotifyError(f"POST to {where} failed ({_clean(str(reason), self.url)})") from None

    def _run(self, event: Event, line: str) -> None:
        if self.command is None:
            return
        env = {**os.environ, "SWEEP_SUMMARY": line, "SWEEP_EVENT": event.value}
        name = os.path.basename(self.command[0])
        try:
            done = subprocess.run(
                list(self.command),
                input=line + "\n",
                text=True,
                env=env,
                timeout=self.timeout_s,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise NotifyError(f"command {name} did not end within {self.timeout_s:g} s (killed)") from None
        except OSError as exc:
            raise NotifyError(f"command {name} could not run ({exc.strerror or exc})") from None
        if done.returncode != 0:
            tail = (done.stderr or "").strip().splitlines()[-1:] or [""]
            raise NotifyError(f"command {name} exited {done.returncode}" + (f": {tail[0][:200]}" if tail[0] else ""))


class NotifyError(Exception):
    """A notification that did not arrive (one line, the URL shown as scheme and host)."""


def _logged(job, failures: list[str]) -> None:
    try:
        job()
    except NotifyError as exc:
        failures.append(str(exc))
        print(f"[sweep] notify: {exc}", file=sys.stderr, flush=True)
    except Exception as exc:  # never let a notification fail the sweep
        message = f"{type(exc).__name__}: {storage.redact(str(exc)).splitlines()[0] if str(exc) else ''}"
        failures.append(message)
        print(f"[sweep] notify: {message}", file=sys.stderr, flush=True)


def shown_url(url: str) -> str:
    """``scheme://host[:port]/...``: the URL without user info, path or query, which may hold credentials."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}/..." if parts.path not in ("", "/") or parts.query else f"{parts.scheme}://{host}"


def _clean(text: str, url: str) -> str:
    return storage.redact(text.replace(url, shown_url(url))).splitlines()[0][:200] if text else "no reason given"
