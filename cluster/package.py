"""The job's package: a staged copy of the project (orchestrator/, schedules/, cluster/, ... without .venv,
runs, .git, bench results) plus the sweep YAML, uploaded as a Ray Job's ``working_dir``; the job's
entrypoint and runtime environment; and where the sweep's results land as the cluster sees them. Talks to
no cluster (``cluster.jobs`` submits the package)."""

from __future__ import annotations

import fnmatch
import os
import shlex
import shutil
import urllib.parse
from pathlib import Path
from typing import Any

from orchestrator.errors import JobsInputError, LocalStorageError

STOP_SIGNAL = "SIGINT"  # Tune catches SIGINT: it stops the trials and saves the experiment state
DEFAULT_STOP_WAIT_S = 60  # then Ray's job supervisor waits this long before SIGKILL (Ray's default: 3)
SUBMITTED_DIR = "_submitted"  # where the sweep YAML sits inside the uploaded working_dir

# Never uploaded (gitignore-style, relative to the project root; Ray also honours .gitignore files).
EXCLUDES: tuple[str, ...] = (
    ".git",
    ".venv",
    "venv",
    "env",
    "runs",
    "bench/results",
    "bench/_work",
    "__pycache__",
    "*.pyc",
    ".pytest_cache",
    ".hypothesis",
    ".mypy_cache",
    ".ruff_cache",
    "*.egg-info",
    "build",
    "dist",
    "node_modules",
    ".ipynb_checkpoints",
)
PACKAGES = ("orchestrator", "schedules", "cluster")


def project_root() -> Path:
    """The folder holding orchestrator/, schedules/ and cluster/ (the repo root in a checkout)."""
    return Path(__file__).resolve().parent.parent


def _is_checkout(root: Path) -> bool:
    return (root / "pyproject.toml").is_file() and all((root / p).is_dir() for p in PACKAGES)


def _ignore_for(root: Path, excludes: tuple[str, ...]):
    def ignore(dirpath: str, names: list[str]) -> list[str]:
        rel = Path(dirpath).resolve().relative_to(root)
        out = []
        for name in names:
            relpath = (rel / name).as_posix()
            full = os.path.join(dirpath, name)
            # gitignore-style: "/x" matches at the root only, "a/b" from the root, "x" at any depth
            if any(
                fnmatch.fnmatch("/" + relpath, pat)
                if pat.startswith("/")
                else fnmatch.fnmatch(relpath, pat)
                if "/" in pat
                else fnmatch.fnmatch(name, pat)
                for pat in excludes
            ):
                out.append(name)
            elif not (os.path.isfile(full) or os.path.isdir(full)):  # sockets, fifos, broken links
                out.append(name)
        return out

    return ignore


def stage(
    config_path: str | Path, dest: str | Path, root: Path | None = None, excludes: tuple[str, ...] = EXCLUDES
) -> str:
    """Copy the project (filtered by ``excludes``) and the sweep YAML into ``dest``; return the YAML's
    path relative to ``dest`` (what the entrypoint names). Outside a checkout (an installed package),
    only the packages orchestrator/, schedules/, cluster/ are copied."""
    root = (root or project_root()).resolve()
    dest = Path(dest)
    ignore = _ignore_for(root, excludes + (f"/{SUBMITTED_DIR}",))  # never a stale copy from the checkout
    if _is_checkout(root):
        shutil.copytree(root, dest, ignore=ignore, dirs_exist_ok=True)
    else:
        for pkg in PACKAGES:
            shutil.copytree(root / pkg, dest / pkg, ignore=ignore, dirs_exist_ok=True)
    config_path = Path(config_path)
    rel = f"{SUBMITTED_DIR}/{config_path.name}"
    (dest / SUBMITTED_DIR).mkdir(exist_ok=True)
    shutil.copyfile(config_path, dest / rel)
    return rel


def entrypoint(config_rel: str, resume: bool = False) -> str:
    """The job's shell command: the sweep's own CLI, run by the cluster's Python in the working_dir."""
    cmd = f"python -m orchestrator.cli run {shlex.quote(config_rel)} --quiet"
    return cmd + (" --resume" if resume else "")


def runtime_env(
    working_dir: str | Path,
    stop_wait_s: int = DEFAULT_STOP_WAIT_S,
    pip: list[str] | None = None,
    env_vars: dict[str, str] | None = None,
) -> dict:
    """The job's runtime environment. ``pip`` installs packages on the cluster first (for clusters whose
    Python lacks the dependencies); by default the cluster's Python is expected to have them."""
    if not (isinstance(stop_wait_s, int) and 0 < stop_wait_s <= 86400):
        raise JobsInputError(f"stop_wait_s={stop_wait_s!r}: expected whole seconds in 1..86400")
    env = {
        "RAY_JOB_STOP_SIGNAL": STOP_SIGNAL,
        "RAY_JOB_STOP_WAIT_TIME_S": str(stop_wait_s),
        "PYTHONUNBUFFERED": "1",
        **(env_vars or {}),
    }
    out: dict[str, Any] = {"working_dir": str(working_dir), "excludes": list(EXCLUDES), "env_vars": env}
    if pip:
        out["pip"] = list(pip)
    return out


def name_and_storage(config_path: Path) -> tuple[str, str]:
    """``name`` and ``storage`` from the sweep YAML (validated by the caller; here only read)."""
    import yaml

    try:
        data = yaml.safe_load(config_path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise JobsInputError(f"{config_path}: cannot read the sweep YAML ({exc.__class__.__name__})") from None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise JobsInputError(f"{config_path}: expected a sweep YAML with a name")
    return data["name"], str(data.get("storage", "runs"))


ALLOW_LOCAL_FLAG = "--allow-local-storage"


def results_folder(storage: str, name: str, allow_local: bool = False) -> tuple[str, str | None]:
    """Where the sweep's results land as the cluster sees it, and a warning when that is a place the
    user cannot read.

    A URI (``s3://...``) and an absolute path (taken as one every node and the user share) are accepted.
    A relative path (it resolves inside the job's temporary working_dir on the head node, which Ray
    deletes) or a ``~`` path (the home folder of whichever node runs the job) raises
    ``LocalStorageError`` naming ``--allow-local-storage``; with ``allow_local`` it is accepted with a
    warning.
    """
    from orchestrator import storage as stores

    if stores.is_uri(storage):  # s3://bucket/runs?endpoint_override=... -> s3://bucket/runs/NAME?..., no credentials
        return stores.display(stores.join(storage, name)), None
    path = storage
    if stores.scheme(storage):  # file:// or local://: a local folder
        path = urllib.parse.unquote(urllib.parse.urlsplit(storage).path) or "."
    if path.startswith("~"):
        where, folder = (
            "the home folder of the node that runs the job (the head node), not yours",
            f"{path.rstrip('/')}/{name}",
        )
    elif not Path(path).is_absolute():
        where, folder = (
            "the job's temporary working_dir on the head node, which Ray deletes",
            f"<job working_dir>/{path.rstrip('/')}/{name}",
        )
    else:
        return f"{path.rstrip('/')}/{name}", None
    problem = (
        f"storage={storage!r} is machine-local: on the cluster it resolves inside {where}; set storage: "
        f"to an absolute path every node and you share (e.g. /shared/sweeps on NFS) or a URI such as "
        f"s3://bucket/sweeps"
    )
    if not allow_local:
        raise LocalStorageError(f"{problem}, or pass {ALLOW_LOCAL_FLAG} to keep the results there anyway")
    return folder, f"{problem} to keep the results ({ALLOW_LOCAL_FLAG} given)"
