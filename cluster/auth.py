"""The Ray auth token: found the way Ray's own loader finds it (``RAY_AUTH_TOKEN``, else the file named by
``RAY_AUTH_TOKEN_PATH``, else ``~/.ray/auth_token``), and required of a cluster in token mode. Shared by
``sweep run --address`` (``cluster.connect``) and the Jobs API client (``cluster.jobs``); talks to no
cluster. The token's value never appears in a message or a ``repr``."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.errors import AuthError, InsecureClusterError

TOKEN_ENV = "RAY_AUTH_TOKEN"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"


@dataclass(frozen=True)
class Token:
    """A Ray auth token and where it came from. ``repr`` never shows the value."""

    value: str = field(repr=False)
    source: str  # "RAY_AUTH_TOKEN" or the file's path
    loose_permissions: bool = False  # a file readable by group or others

    def header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.value}"}


def _read_token_file(path: Path) -> Token | None:
    try:
        value = path.read_text().strip()
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise AuthError(f"token file {path}: cannot read it ({exc.__class__.__name__})") from None
    if not value:
        return None
    return Token(value, str(path), bool(mode & (stat.S_IRWXG | stat.S_IRWXO)))


def find_token() -> Token | None:
    """The token Ray's own loader would use, read now: ``RAY_AUTH_TOKEN``, else the file in
    ``RAY_AUTH_TOKEN_PATH`` (an error if set but missing or empty, as in Ray), else ``~/.ray/auth_token``."""
    value = os.environ.get(TOKEN_ENV, "").strip()
    if value:
        return Token(value, TOKEN_ENV)
    path = os.environ.get(TOKEN_PATH_ENV, "").strip()
    if path:
        token = _read_token_file(Path(path).expanduser())
        if token is None:
            raise AuthError(
                f"{TOKEN_PATH_ENV}={path}: no such file or it is empty; put the cluster's token "
                f"(from `ray get-auth-token` on the head node) there, mode 600"
            )
        return token
    return _read_token_file(Path.home() / ".ray" / "auth_token")


def write_token_file(path: str | Path, token: str) -> Path:
    """Write a token to ``path`` with mode 600 (created that way: never readable by others, not even briefly)."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token.strip())
    os.chmod(path, 0o600)
    return path


def _missing_token_message(address: str) -> str:
    return (
        f"{address} requires a Ray auth token (token authentication is on) and none was found in "
        f"{TOKEN_ENV}, {TOKEN_PATH_ENV} or ~/.ray/auth_token: get it with `ray get-auth-token` on the "
        f"head node, save it to a file with mode 600 and set {TOKEN_PATH_ENV}=FILE"
    )


def rejected_token_message(address: str, token: Token | None, status: int) -> str:
    if token is None:
        return _missing_token_message(address).replace(" requires", f" answered HTTP {status}: it requires", 1)
    return (
        f"{address} rejected the Ray auth token from {token.source} (HTTP {status}): get the cluster's "
        f"token with `ray get-auth-token` on the head node and set {TOKEN_PATH_ENV} to a file (mode 600) "
        f"holding it"
    )


def require_auth(address: str, mode: str, insecure: bool, what: str = "it") -> Token | None:
    """The token to send to a cluster in authentication ``mode``; None for an open cluster (which never
    gets one). Raises ``InsecureClusterError`` for an open cluster unless ``insecure``, ``AuthError`` when
    the cluster wants a token and none is found. ``sweep submit`` and ``sweep run --address`` share it."""
    if mode != "token":
        if not insecure:
            raise InsecureClusterError(
                f"{address} does not require a token (authentication_mode={mode}): {what} runs anyone's code "
                f"(CVE-2023-48022); turn token authentication on (RAY_AUTH_MODE=token, `ray get-auth-token "
                f"--generate` on the head node) or pass --insecure"
            )
        return None
    token = find_token()
    if token is None:
        raise AuthError(_missing_token_message(address))
    return token
