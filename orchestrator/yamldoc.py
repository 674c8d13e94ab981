"""Sweep YAML text as plain data: ``load_yaml`` (a SafeLoader that reads ``1e-6`` as a float),
``count_nodes`` (the size of a document once its aliases are expanded: an alias bomb is refused by
``config.parse``) and ``with_sets`` (``--name`` and ``--set KEY=VALUE`` applied to the text). Errors are
``ConfigError`` naming the source; nothing here validates a config. Pure: imports neither Ray nor torch."""

from __future__ import annotations

import re
from typing import Any

import yaml

from orchestrator.errors import ConfigError
from orchestrator.sections import shown

MAX_NODES = 10_000  # a sweep config is a few dozen nodes; more than this after alias expansion is refused


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-6`` as a float (YAML 1.1 wants ``1.0e-6``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_yaml(text: str, source: str) -> Any:
    """The document ``text`` as plain data; ``ConfigError`` naming ``source``, line and column for bad YAML."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{source}: YAML syntax error at {where}{problem}") from None


def count_nodes(data: Any, limit: int = MAX_NODES) -> int:
    """How many nodes (mappings, lists, scalars; a mapping's keys too) ``data`` holds once every shared
    part (a YAML alias) is counted each time it appears; stops counting past ``limit``. Shared parts are
    counted once each (memoised), so a document of nested aliases costs its own size, not its expansion.
    Raises ``ValueError`` for a document that contains itself (a recursive alias)."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()

    def size(node: Any) -> int:
        if not isinstance(node, (dict, list, tuple)):
            return 1
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_:
            raise ValueError("the document contains itself (a recursive alias)")
        open_.add(key)
        total = 1
        items = [x for kv in node.items() for x in kv] if isinstance(node, dict) else node
        for item in items:
            total += size(item)
            if total > limit:
                break
        open_.discard(key)
        sizes[key] = total
        return total

    return size(data)


def with_sets(text: str, sets: list[str], source: str = "<config>", name: str | None = None) -> str:
    """The sweep YAML ``text`` with ``name`` (taken as it is) and each ``KEY=VALUE`` of ``sets`` applied in
    order, as YAML text (for ``loads``, and to store as the effective config). ``KEY`` is dotted
    (``space.optimizer``, ``zoom.max_rounds``; missing mappings are created); ``VALUE`` is read as YAML (``5``
    an int, ``1e-3`` a float, ``adam`` a string). Raises ``ConfigError`` naming the setting for one that is
    not ``KEY=VALUE`` or whose key passes through a value that is not a mapping; the result is validated by
    ``loads``, not here."""
    if not sets and name is None:
        return text
    data = load_yaml(text, source)
    try:
        plain = isinstance(data, dict) and count_nodes(data) <= MAX_NODES
    except ValueError:  # a recursive alias
        plain = False
    if not plain:
        return text  # loads refuses it with its own message
    if name is not None:
        data["name"] = name
    for item in sets:
        key, sep, value = str(item).partition("=")
        parts = key.split(".")
        if not sep or not all(re.fullmatch(r"[A-Za-z_][\w-]{0,99}", part) for part in parts):
            raise ConfigError(
                f"--set {shown(item)}: expected KEY=VALUE with a dotted key, "
                f"such as space.optimizer=adam or zoom.max_rounds=3"
            )
        target = data
        for i, part in enumerate(parts[:-1]):
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ConfigError(
                    f"--set {shown(item)}: {'.'.join(parts[: i + 1])} is {shown(target)} in "
                    f"{source}, not a mapping of keys"
                )
        target[parts[-1]] = load_yaml(value, f"--set {shown(item)}")
    flags = ([f"--name {name}"] if name is not None else []) + [f"--set {item}" for item in sets]
    return f"# {source} with {' '.join(' '.join(str(f).split()) for f in flags)}\n" + yaml.safe_dump(
        data, sort_keys=False
    )
