"""The Ray cluster-launcher YAMLs in cluster/, validated the way `ray up` validates them, offline.

`ray up` runs ``prepare_config`` (merge the provider's defaults.yaml, per-node-type bounds) and then
``validate_config`` (jsonschema against the ray-schema.json inside the ray package, plus head-type and
min/max-worker checks), both in ``ray.autoscaler._private.util`` in Ray 2.60. What comes after needs the
cloud (the AWS provider's ``bootstrap_config`` calls EC2/IAM) and is not done here.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ray = pytest.importorskip("ray")
jsonschema = pytest.importorskip("jsonschema")
from ray.autoscaler._private.util import prepare_config, validate_config  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "cluster"
CONFIGS = sorted(CLUSTER.glob("*.yaml"))
RAY_SCHEMA = Path(ray.autoscaler.__file__).parent / "ray-schema.json"
RAY_SCHEMA_JSON = json.loads(RAY_SCHEMA.read_text())
GPU_INSTANCE_FAMILIES = ("g4dn", "g5", "g6", "g6e", "gr6", "p3", "p4d", "p4de", "p5", "p5e")


def _load(name: str) -> dict[str, Any]:
    return yaml.safe_load((CLUSTER / name).read_text())


def ray_validate(config: dict[str, Any]) -> dict[str, Any]:
    """What `ray up` checks before it touches a cloud: raises on an invalid config.

    The config as written is checked against Ray's schema first: `ray up` only checks after
    ``prepare_config``, which for the local provider compares ``max_workers`` with an int and so dies
    with a TypeError on ``max_workers: "2"`` instead of reporting it.
    """
    jsonschema.validate(config, RAY_SCHEMA_JSON)
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def test_launcher_configs_exist():
    assert {p.name for p in CONFIGS} >= {"local.yaml", "aws-gpu.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_is_valid_for_ray(path: Path):
    config = yaml.safe_load(path.read_text())
    prepared = ray_validate(config)
    assert prepared["head_node_type"] in prepared["available_node_types"]


# --- a broken copy must fail ------------------------------------------------------------------------------
def _set(*path: Any, value: Any) -> Callable[[dict], None]:
    def mutate(c: dict) -> None:
        node = c
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return mutate


BROKEN: list[tuple[str, str, Callable[[dict], None], str]] = [
    ("unknown-top-level-key", "aws-gpu.yaml", _set("max_worker", value=4), "max_worker"),
    (
        "min_workers-as-string",
        "aws-gpu.yaml",
        _set("available_node_types", "gpu_worker", "min_workers", value="0"),
        "is not of type 'integer'",
    ),
    (
        "gpu-count-as-string",
        "aws-gpu.yaml",
        _set("available_node_types", "gpu_worker", "resources", "GPU", value="1"),
        "is not of type 'integer'",
    ),
    (
        "unknown-node-type-key",
        "aws-gpu.yaml",
        _set("available_node_types", "gpu_worker", "max_worker", value=4),
        "max_worker",
    ),
    ("unknown-docker-key", "aws-gpu.yaml", _set("docker", "imagee", value="rayproject/ray:2.60.0"), "imagee"),
    ("head-type-not-defined", "aws-gpu.yaml", _set("head_node_type", value="ray.head.default"), "head_node_type"),
    (
        "min-workers-above-global-max",
        "aws-gpu.yaml",
        _set("available_node_types", "gpu_worker", "min_workers", value=9),
        "max_workers",
    ),
    ("local-unknown-top-level-key", "local.yaml", _set("worker_ip", value=["192.0.2.13"]), "worker_ip"),
    ("local-max_workers-as-string", "local.yaml", _set("max_workers", value="2"), "is not of type 'integer'"),
]


@pytest.mark.parametrize("name, mutate, expected", [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_broken_copy_is_rejected(name, mutate, expected):
    config = _load(name)
    ray_validate(config)
    mutate(config)
    with pytest.raises((jsonschema.ValidationError, ValueError)) as info:
        ray_validate(config)
    assert expected in str(info.value)


# --- what this project needs from them ------------------------------------------------------------------
def _image_tag(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    assert ":" in last, f"{image}: not pinned"
    tag = last.rsplit(":", 1)[1]
    assert tag != "latest" and not tag.startswith("latest-"), f"{image}: not pinned"
    return tag


def test_aws_has_an_autoscaling_gpu_worker_type():
    config = _load("aws-gpu.yaml")
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert not head["resources"].get("GPU"), "the head is a CPU node"
    assert not head["node_config"]["InstanceType"].startswith(GPU_INSTANCE_FAMILIES)
    gpu_types = {name: t for name, t in types.items() if t["resources"].get("GPU", 0) >= 1}
    assert gpu_types, "expected a worker type with resources: {GPU: n}"
    for name, t in gpu_types.items():
        assert name != config["head_node_type"]
        assert 0 <= t["min_workers"] <= t["max_workers"] <= config["max_workers"], name
        assert t["max_workers"] >= 1, f"{name}: can never scale up"
        assert t["node_config"]["InstanceType"].split(".")[0] in GPU_INSTANCE_FAMILIES, name
        assert t["resources"].get("CPU", 0) >= 1, f"{name}: trials need a CPU beside their GPU share"


def test_aws_image_and_ami_are_pinned():
    config = _load("aws-gpu.yaml")
    docker = config["docker"]
    for key in ("image", "head_image", "worker_image"):
        if key in docker:
            tag = _image_tag(docker[key])
            assert tag.split("-")[0] == ray.__version__, f"docker.{key} {docker[key]} is not Ray {ray.__version__}"
    region = config["provider"]["region"]
    # Ray's own per-region AMI table, read from source (importing it needs boto3).
    source = (Path(ray.autoscaler.__file__).parent / "_private" / "aws" / "config.py").read_text()
    ray_default_amis = dict(re.findall(r'"([a-z]{2}-[a-z]+-\d)":\s*"(ami-[0-9a-f]+)"', source))
    for name, t in config["available_node_types"].items():
        ami = t["node_config"].get("ImageId", "")
        assert re.fullmatch(r"ami-[0-9a-f]{8,17}", ami), f"{name}: ImageId {ami!r} is not a pinned AMI id"
        if ami in ray_default_amis.values():
            assert ray_default_amis.get(region) == ami, f"{name}: {ami} is Ray's default AMI for another region"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_nodes_install_the_project(path: Path):
    config = yaml.safe_load(path.read_text())
    project = [remote for remote, local in config["file_mounts"].items() if local in (".", "./")]
    assert len(project) == 1, "expected the repository ('.') mounted on the nodes"
    commands = config.get("setup_commands", []) + config.get("worker_setup_commands", [])
    assert any(re.search(rf"pip install\b.*\s{re.escape(project[0])}/?(\s|$)", c) for c in commands), commands
    assert any("torch==" in c for c in commands), "torch pinned, as in the project"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_token_authentication_is_on(path: Path):
    config = yaml.safe_load(path.read_text())
    assert "~/.ray/auth_token" in config["file_mounts"], "every node needs the same token"
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        starts = [c for c in config[key] if "ray start" in c]
        assert starts and all("RAY_AUTH_MODE=token" in c for c in starts), key
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=0.0.0.0" not in head_start, "dashboard stays on localhost; use `ray dashboard`"


def test_local_has_placeholder_addresses():
    config = _load("local.yaml")
    provider = config["provider"]
    assert provider["type"] == "local"
    ips = [provider["head_ip"], *provider["worker_ips"]]
    for ip in ips:
        ipaddress.ip_address(ip)
    assert len(set(ips)) == len(ips), "head and workers are different machines"
    assert config["max_workers"] <= len(provider["worker_ips"])


# --- no core dumps --------------------------------------------------------------------------------------
_ULIMIT = re.compile(r"\bulimit\b([^;&|\n]*)")
_DOCKER_ULIMIT = re.compile(r"--ulimit[ =]core=(\S+)")


def core_dump_settings(config: dict[str, Any]) -> list[str]:
    """Every place a launcher config raises the core-dump size limit above 0 (shell `ulimit -c`, or
    docker `--ulimit core=`), as ``where: command`` lines. A crashing Ray process would write its
    memory (the auth token, storage credentials, data) to disk."""
    found = []
    keys = [k for k in config if k.endswith("_commands")]
    for key in keys:
        for i, command in enumerate(config.get(key) or []):
            for args in _ULIMIT.findall(str(command)):
                words = args.split()
                # `ulimit -c N`, `-cN`, `-Sc N`, `-Hc N`: the value follows the -c flag
                for j, word in enumerate(words):
                    if word.startswith("-") and "c" in word[1:]:
                        value = word[word.index("c") + 1 :] or (words[j + 1] if j + 1 < len(words) else "")
                        if value not in ("0",):
                            found.append(f"{key}[{i}]: {command.strip()}")
    for option in (config.get("docker") or {}).get("run_options") or []:
        for value in _DOCKER_ULIMIT.findall(str(option)):
            if value.split(":")[0] != "0":
                found.append(f"docker.run_options: {option}")
    return found


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_no_core_dumps_turned_on(path: Path):
    config = yaml.safe_load(path.read_text())
    assert core_dump_settings(config) == []


@pytest.mark.parametrize(
    "command, expected",
    [
        ("ulimit -c unlimited; ray start --head", 1),
        ("ulimit -S -c 1000000 && ray start", 1),
        ("ulimit -Hc unlimited", 1),
        ("ulimit -c 0; ray start", 0),
        ("ulimit -n 65536; ray start", 0),
    ],
)
def test_core_dump_check_sees_ulimit(command: str, expected: int):
    assert len(core_dump_settings({"head_start_ray_commands": [command]})) == expected
    docker = {"docker": {"run_options": ["--ulimit core=-1"]}}
    assert len(core_dump_settings(docker)) == 1
