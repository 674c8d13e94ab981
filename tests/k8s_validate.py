"""Offline validation of KubeRay manifests, close to what the API server and the operator check.

``kubectl apply --validate=strict`` against a cluster with the KubeRay CRDs does three things this module
reproduces without a cluster:

1. drops nulls of non-nullable fields and applies the ``default:`` values of the CRD's structural schema;
2. validates the object against ``spec.versions[].schema.openAPIV3Schema``;
3. reports unknown fields (the API server would prune them silently, which is how a typo such as
   ``workerGroupSpec:`` turns into a cluster without workers).

CEL rules (``x-kubernetes-validations``) and the operator's own Go checks are not in the schema; the ones
that matter here are reimplemented in :func:`semantic_errors`, next to a few rules of this project
(token auth on, images pinned, head Service not exposed, a GPU worker group, every pod hardened:
:func:`hardening_errors`). :func:`policy_admits` evaluates what a NetworkPolicy lets through.

Imports nothing but PyYAML and jsonschema. Every public function returns a list of error strings
(empty: valid), so a test can assert on the message.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import yaml

try:  # libyaml is ~8x faster on the 1 MB CRDs
    _YAML_LOADER = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _YAML_LOADER = yaml.SafeLoader

# The operator's limits (ray-operator/controllers/ray/utils/constant.go): the names get suffixes.
MAX_NAME_LENGTH = {"RayCluster": 53, "RayJob": 47, "RayService": 40}
MIN_TOKEN_AUTH_RAY_VERSION = (2, 52, 0)
SUBMISSION_MODES = {"K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"}
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")

# metadata is `type: object` in a CRD (the API server validates ObjectMeta itself): a strict subset of it.
_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
OBJECT_META_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "generateName": {"type": "string"},
        "namespace": {"type": "string"},
        "labels": _STR_MAP,
        "annotations": _STR_MAP,
        "finalizers": {"type": "array", "items": {"type": "string"}},
        "ownerReferences": {"type": "array", "items": {"type": "object"}},
        "uid": {"type": "string"},
        "resourceVersion": {"type": "string"},
        "generation": {"type": "integer"},
        "creationTimestamp": {"type": "string"},
        "deletionTimestamp": {"type": "string"},
        "deletionGracePeriodSeconds": {"type": "integer"},
        "managedFields": {"type": "array"},
    },
    "additionalProperties": False,
}


# --- loading --------------------------------------------------------------------------------------------
def load_yaml_documents(path: str | Path) -> list[Any]:
    """Every non-empty document of a (multi-document) YAML file."""
    with open(path) as f:
        return [doc for doc in yaml.load_all(f, Loader=_YAML_LOADER) if doc is not None]


def _load_cached(path: Path, cache_dir: Path | None) -> list[Any]:
    """``load_yaml_documents``, memoised as JSON in ``cache_dir`` (parsing a 1 MB CRD takes a second)."""
    if cache_dir is None:
        return load_yaml_documents(path)
    st = path.stat()
    cached = Path(cache_dir) / f"{path.name}-{st.st_size}-{st.st_mtime_ns}.json"
    try:
        return json.loads(cached.read_text())
    except (OSError, ValueError):
        docs = load_yaml_documents(path)
        try:
            Path(cache_dir).mkdir(parents=True, exist_ok=True)
            cached.write_text(json.dumps(docs))
        except (OSError, TypeError, ValueError):
            pass
        return docs


class CRDSchemas:
    """The served versions of the CRDs in a folder, by (apiVersion, kind); schemas made strict on first use.

    ``kinds`` limits loading to those kinds' files when they follow controller-gen's naming
    (``<group>_<plural>.yaml``), which saves parsing megabytes of YAML that no manifest uses;
    ``cache_dir`` keeps the parsed files as JSON between runs.
    """

    def __init__(self, folder: str | Path, kinds: Iterable[str] | None = None, cache_dir: str | Path | None = None):
        self.folder = Path(folder)
        self._raw: dict[tuple[str, str], dict[str, Any]] = {}
        self._strict: dict[tuple[str, str], dict[str, Any]] = {}
        files = sorted(self.folder.glob("*.yaml"))
        if kinds is not None:
            wanted = [p for p in files if any(p.stem.endswith(f"_{k.lower()}s") for k in kinds)]
            files = wanted or files
        for path in files:
            for doc in _load_cached(path, Path(cache_dir) if cache_dir else None):
                if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                    continue
                group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
                for version in doc["spec"]["versions"]:
                    if version.get("served", True):
                        self._raw[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]

    def kinds(self) -> set[str]:
        return {kind for _, kind in self._raw}

    def schema_for(self, api_version: str, kind: str) -> dict[str, Any] | None:
        key = (api_version, kind)
        if key not in self._strict and key in self._raw:
            self._strict[key] = strict_schema(self._raw[key])
        return self._strict.get(key)


# --- schema preparation ---------------------------------------------------------------------------------
def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of a structural schema that rejects unknown fields, as ``--validate=strict`` does.

    ``additionalProperties: false`` goes wherever the API server would prune: on every object that lists
    ``properties`` and on every object with no ``properties`` and no ``additionalProperties`` (everything in
    it is pruned), unless it says ``x-kubernetes-preserve-unknown-fields: true`` (an embedded PodTemplateSpec
    may be fully specified or preserved; both are honoured). ``nullable: true`` becomes a ``null`` type.
    The root's ``metadata`` gets a strict ObjectMeta schema.
    """
    out = copy.deepcopy(schema)
    _make_strict(out)
    props = out.get("properties", {})
    if "metadata" in props and not props["metadata"].get("properties"):
        props["metadata"] = copy.deepcopy(OBJECT_META_SCHEMA)
    return out


def _make_strict(node: Any) -> None:
    if isinstance(node, list):
        for item in node:
            _make_strict(item)
        return
    if not isinstance(node, dict):
        return
    if node.get("nullable") is True and isinstance(node.get("type"), str):
        node["type"] = [node["type"], "null"]
    preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
    is_object = node.get("type") == "object" or "properties" in node
    if is_object and not preserve and "additionalProperties" not in node:
        node["additionalProperties"] = False
    for key in ("properties", "patternProperties"):
        for child in node.get(key, {}).values():
            _make_strict(child)
    for key in ("items", "additionalProperties", "not"):
        if isinstance(node.get(key), (dict, list)):
            _make_strict(node[key])
    for key in ("allOf", "anyOf", "oneOf"):
        if isinstance(node.get(key), list):
            _make_strict(node[key])


# --- defaulting -----------------------------------------------------------------------------------------
def apply_defaults(obj: Any, schema: dict[str, Any]) -> Any:
    """What the API server stores: nulls of non-nullable fields dropped, ``default:`` values filled in."""
    obj = copy.deepcopy(obj)
    return _default(obj, schema)


def _nullable(schema: dict[str, Any]) -> bool:
    t = schema.get("type")
    return schema.get("nullable") is True or (isinstance(t, list) and "null" in t)


def _default(value: Any, schema: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        props = schema.get("properties")
        if props:
            for key in [k for k, v in value.items() if v is None and k in props and not _nullable(props[k])]:
                del value[key]
            for key, sub in props.items():
                if key not in value and "default" in sub:
                    value[key] = copy.deepcopy(sub["default"])
            for key, sub in props.items():
                if key in value:
                    value[key] = _default(value[key], sub)
        elif isinstance(schema.get("additionalProperties"), dict):
            sub = schema["additionalProperties"]
            for key in list(value):
                if value[key] is None and not _nullable(sub):
                    del value[key]
                else:
                    value[key] = _default(value[key], sub)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        sub = schema["items"]
        value[:] = [_default(v, sub) for v in value if not (v is None and not _nullable(sub))]
    return value


# --- schema validation ----------------------------------------------------------------------------------
_FORMATS = jsonschema.FormatChecker(formats=())


@_FORMATS.checks("int32")
def _int32(value: Any) -> bool:
    return not isinstance(value, int) or -(2**31) <= value < 2**31


@_FORMATS.checks("int64")
def _int64(value: Any) -> bool:
    return not isinstance(value, int) or -(2**63) <= value < 2**63


def _path(error: jsonschema.ValidationError) -> str:
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(root)"


def schema_errors(obj: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """jsonschema errors of an already-defaulted object, as ``path: message`` lines."""
    validator = jsonschema.Draft4Validator(schema, format_checker=_FORMATS)
    errors = sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{_path(e)}: {e.message}" for e in errors]


# --- the operator's Go checks, CEL rules, and this project's rules --------------------------------------
def parse_version(text: str) -> tuple[int, ...] | None:
    m = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", str(text))
    return tuple(int(g or 0) for g in m.groups()) if m else None


def image_problem(image: Any) -> str | None:
    """Why an image reference is not pinned (None when it is: a tag other than latest, or a digest)."""
    if not isinstance(image, str) or not image:
        return f"image {image!r}: expected a non-empty image reference"
    if "@sha256:" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"image {image!r}: no tag, which means :latest; pin a version"
    tag = last.rsplit(":", 1)[1]
    if tag == "latest" or tag.startswith("latest-"):
        return f"image {image!r}: tag {tag!r} moves; pin a version"
    return None


def iter_containers(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every container (and init container) anywhere under ``node``, with its path."""
    if isinstance(node, dict):
        for key, value in node.items():
            sub = f"{path}.{key}" if path else key
            if key in ("containers", "initContainers") and isinstance(value, list):
                for i, c in enumerate(value):
                    if isinstance(c, dict):
                        yield f"{sub}[{i}]", c
            else:
                yield from iter_containers(value, sub)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from iter_containers(value, f"{path}[{i}]")


def _ray_container(template: Any) -> dict[str, Any] | None:
    try:
        containers = template["spec"]["containers"]
    except (KeyError, TypeError):
        return None
    return containers[0] if isinstance(containers, list) and containers and isinstance(containers[0], dict) else None


def _quantity_positive(value: Any) -> bool:
    try:
        return float(str(value).rstrip("m")) > 0
    except ValueError:
        return False


def cluster_spec_errors(spec: Any, where: str) -> list[str]:
    """Checks on a RayClusterSpec (RayCluster.spec or RayJob.spec.rayClusterSpec)."""
    if not isinstance(spec, dict):
        return [f"{where}: expected a RayClusterSpec mapping"]
    errors: list[str] = []
    version = spec.get("rayVersion")

    # Go check: token auth needs Ray >= 2.52.0 (validation.go, ValidateRayClusterSpec).
    # Project rule: token auth is on.
    auth = spec.get("authOptions")
    mode = auth.get("mode") if isinstance(auth, dict) else None
    if mode != "token":
        errors.append(f"{where}.authOptions.mode: expected 'token' (token authentication on), got {mode!r}")
    else:
        parsed = parse_version(version) if version else None
        if parsed is None:
            errors.append(
                f"{where}.rayVersion: authOptions.mode is 'token', which needs rayVersion >= 2.52.0; got {version!r}"
            )
        elif parsed < MIN_TOKEN_AUTH_RAY_VERSION:
            errors.append(
                f"{where}.rayVersion: authOptions.mode is 'token', which needs rayVersion >= 2.52.0; got {version!r}"
            )

    head = spec.get("headGroupSpec") or {}
    # Project rule: the head Service is not exposed outside the cluster.
    service_type = head.get("serviceType", "ClusterIP")
    if service_type != "ClusterIP":
        errors.append(
            f"{where}.headGroupSpec.serviceType: expected ClusterIP (use kubectl port-forward), got {service_type!r}"
        )
    svc_type = ((head.get("headService") or {}).get("spec") or {}).get("type")
    if svc_type not in (None, "ClusterIP"):
        errors.append(f"{where}.headGroupSpec.headService.spec.type: expected ClusterIP, got {svc_type!r}")

    groups = [("headGroupSpec", head)] + [
        (f"workerGroupSpecs[{i}]", g) for i, g in enumerate(spec.get("workerGroupSpecs") or []) if isinstance(g, dict)
    ]
    for name, group in groups:
        container = _ray_container(group.get("template"))
        if container is None:
            errors.append(f"{where}.{name}.template.spec.containers: expected at least one container")
        params = group.get("rayStartParams") or {}
        if any(params.get(k) for k in ("num-cpus", "num-gpus", "memory", "resources")) and group.get("resources"):
            errors.append(f"{where}.{name}: resources set both in rayStartParams and in resources; use one")
        # Project rule: the Ray image's version is rayVersion.
        image = (container or {}).get("image")
        m = re.match(r"^(?:docker\.io/)?rayproject/ray(?:-ml)?:(\d+\.\d+\.\d+)", str(image))
        if m and version and m.group(1) != str(version):
            errors.append(f"{where}.{name}: image {image!r} is Ray {m.group(1)} but rayVersion is {version!r}")

    gpu_groups = 0
    names: set[str] = set()
    for i, group in enumerate(spec.get("workerGroupSpecs") or []):
        if not isinstance(group, dict):
            continue
        at = f"{where}.workerGroupSpecs[{i}]"
        gname = group.get("groupName")
        if gname in names:
            errors.append(f"{at}.groupName: duplicate group name {gname!r}")
        names.add(gname)
        lo, hi, n = group.get("minReplicas", 0), group.get("maxReplicas", 2**31 - 1), group.get("replicas")
        if isinstance(lo, int) and isinstance(hi, int):
            if lo > hi:  # CEL / Go check
                errors.append(f"{at}: minReplicas ({lo}) > maxReplicas ({hi})")
            elif isinstance(n, int) and not lo <= n <= hi:  # the operator clamps; say so instead
                errors.append(f"{at}.replicas: {n} is outside [minReplicas, maxReplicas] = [{lo}, {hi}]")
        limits = ((_ray_container(group.get("template")) or {}).get("resources") or {}).get("limits") or {}
        if _quantity_positive(limits.get("nvidia.com/gpu", 0)):
            gpu_groups += 1
    # Project rule: there is a GPU worker group, and its pods ask the scheduler for GPUs.
    if gpu_groups == 0:
        errors.append(
            f"{where}.workerGroupSpecs: expected a GPU worker group (a ray container with an nvidia.com/gpu limit)"
        )
    return errors


def semantic_errors(obj: dict[str, Any]) -> list[str]:
    """What CEL rules and the KubeRay operator would reject, plus this project's rules."""
    errors: list[str] = []
    kind = obj.get("kind")
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    if kind in MAX_NAME_LENGTH:
        if not isinstance(name, str) or not name:
            errors.append("metadata.name: required")
        else:
            if len(name) > MAX_NAME_LENGTH[kind]:
                errors.append(
                    f"metadata.name: {kind} names are at most {MAX_NAME_LENGTH[kind]} characters, "
                    f"{name!r} has {len(name)}"
                )
            if not _DNS1035.match(name):
                errors.append(f"metadata.name: {name!r} is not a DNS-1035 label (lower case, digits, '-')")

    # Project rule: every image pinned (covers the RayJob's submitter template too).
    for path, container in iter_containers(obj.get("spec")):
        problem = image_problem(container.get("image"))
        if problem:
            errors.append(f"spec.{path}.image: {problem}")

    # Project rule: every pod hardened (see hardening_errors).
    if kind in ("RayCluster", "RayJob"):
        errors += hardening_errors(obj)

    spec = obj.get("spec") or {}
    if kind == "RayCluster":
        errors += cluster_spec_errors(spec, "spec")
    elif kind == "RayJob":
        if not str(spec.get("entrypoint") or "").strip():
            errors.append("spec.entrypoint: expected the command to run")
        if not spec.get("rayClusterSpec") and not spec.get("clusterSelector"):
            errors.append("spec: one of rayClusterSpec or clusterSelector must be set")
        if spec.get("rayClusterSpec"):
            errors += cluster_spec_errors(spec["rayClusterSpec"], "spec.rayClusterSpec")
        if not spec.get("shutdownAfterJobFinishes") and spec.get("ttlSecondsAfterFinished", 0) > 0:
            errors.append("spec.ttlSecondsAfterFinished: needs shutdownAfterJobFinishes: true")
        if spec.get("suspend") and not spec.get("shutdownAfterJobFinishes"):
            errors.append("spec.suspend: needs shutdownAfterJobFinishes: true")
        mode = spec.get("submissionMode", "K8sJobMode")
        if mode not in SUBMISSION_MODES:
            errors.append(f"spec.submissionMode: expected one of {sorted(SUBMISSION_MODES)}, got {mode!r}")
        deadline = spec.get("activeDeadlineSeconds")
        if deadline is not None and deadline <= 0:
            errors.append("spec.activeDeadlineSeconds: expected a positive number of seconds")
        runtime_env = spec.get("runtimeEnvYAML")
        if runtime_env:
            try:
                loaded = yaml.safe_load(runtime_env)
            except yaml.YAMLError as exc:
                errors.append(f"spec.runtimeEnvYAML: not YAML: {exc}")
            else:
                if not isinstance(loaded, dict):
                    errors.append("spec.runtimeEnvYAML: expected a mapping")
    return errors


# --- pod hardening (this project's rules) ---------------------------------------------------------------
RAY_UID = 1000  # `ray` in rayproject/ray images and in the project image (Dockerfile)
SERVICE_ACCOUNT_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
SECCOMP_CONFINED = {"RuntimeDefault", "Localhost"}
# $HOME is on the read-only root file system: what would write under it must point into a writable mount.
HOME_REDIRECTS = ("XDG_CACHE_HOME", "XDG_CONFIG_HOME")
WRITABLE_VOLUME_KINDS = ("emptyDir", "ephemeral", "persistentVolumeClaim")


def pod_templates(obj: Any) -> list[tuple[str, dict[str, Any]]]:
    """Every PodTemplateSpec of a RayCluster or RayJob, with its path: head, worker groups, then the RayJob's
    submitter (when given). Containers KubeRay adds itself (autoscaler, init containers) are not in them."""
    if not isinstance(obj, dict) or not isinstance(obj.get("spec"), dict):
        return []
    spec = obj["spec"]
    if obj.get("kind") == "RayCluster":
        where, cluster = "spec", spec
    elif obj.get("kind") == "RayJob":
        where, cluster = "spec.rayClusterSpec", spec.get("rayClusterSpec")
    else:
        return []
    out = []
    if isinstance(cluster, dict):
        head = cluster.get("headGroupSpec")
        if isinstance(head, dict) and isinstance(head.get("template"), dict):
            out.append((f"{where}.headGroupSpec.template", head["template"]))
        for i, group in enumerate(cluster.get("workerGroupSpecs") or []):
            if isinstance(group, dict) and isinstance(group.get("template"), dict):
                out.append((f"{where}.workerGroupSpecs[{i}].template", group["template"]))
    if obj.get("kind") == "RayJob" and isinstance(spec.get("submitterPodTemplate"), dict):
        out.append(("spec.submitterPodTemplate", spec["submitterPodTemplate"]))
    return out


def _volume_kind(volume: dict[str, Any]) -> str | None:
    return next((k for k in volume if k != "name"), None)


def writable_mount_for(container: dict[str, Any], volumes: dict[str, dict[str, Any]], path: str) -> str | None:
    """The mountPath of the writable volume (emptyDir, ephemeral, PVC; not readOnly) holding ``path`` in a
    container, deepest mount first; None when ``path`` is on the root file system or a read-only mount."""
    mounts = sorted(container.get("volumeMounts") or [], key=lambda m: -len(str(m.get("mountPath", ""))))
    for m in mounts:
        root = str(m.get("mountPath", "")).rstrip("/")
        if path == root or path.startswith(root + "/"):
            kind = _volume_kind(volumes.get(m.get("name"), {}))
            return root if kind in WRITABLE_VOLUME_KINDS and not m.get("readOnly") else None
    return None


def container_hardening_errors(
    container: dict[str, Any], pod_context: dict[str, Any], where: str, volumes: dict[str, dict[str, Any]] | None
) -> list[str]:
    """Why a container is not hardened: root, privilege escalation, capabilities, a writable root file
    system (and, with a read-only one, no writable /tmp or $HOME redirects), no seccomp confinement.
    ``pod_context`` is the pod's securityContext (runAsNonRoot, runAsUser, seccompProfile are inherited);
    ``volumes`` None skips the checks on mounts (the autoscaler's mounts are checked by the caller)."""
    sc = container.get("securityContext") or {}
    errors = []
    if sc.get("privileged") is True:
        errors.append(f"{where}.securityContext.privileged: expected false")
    if sc.get("allowPrivilegeEscalation") is not False:
        errors.append(
            f"{where}.securityContext.allowPrivilegeEscalation: expected false, got "
            f"{sc.get('allowPrivilegeEscalation')!r}"
        )
    caps = sc.get("capabilities") or {}
    if "ALL" not in (caps.get("drop") or []):
        errors.append(f"{where}.securityContext.capabilities.drop: expected [ALL], got {caps.get('drop')!r}")
    if caps.get("add"):
        errors.append(f"{where}.securityContext.capabilities.add: expected none, got {caps['add']!r}")
    if sc.get("readOnlyRootFilesystem") is not True:
        errors.append(
            f"{where}.securityContext.readOnlyRootFilesystem: expected true, got {sc.get('readOnlyRootFilesystem')!r}"
        )
    non_root = sc.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
    if non_root is not True:
        errors.append(f"{where}: runAsNonRoot (container or pod securityContext): expected true, got {non_root!r}")
    uid = sc.get("runAsUser", pod_context.get("runAsUser"))
    if uid != RAY_UID:
        errors.append(
            f"{where}: runAsUser (container or pod securityContext): expected {RAY_UID} (the image's "
            f"ray user), got {uid!r}"
        )
    seccomp = (sc.get("seccompProfile") or pod_context.get("seccompProfile") or {}).get("type")
    if seccomp not in SECCOMP_CONFINED:
        errors.append(f"{where}: seccompProfile.type: expected RuntimeDefault, got {seccomp!r}")
    if volumes is not None and sc.get("readOnlyRootFilesystem") is True:
        if writable_mount_for(container, volumes, "/tmp") != "/tmp":
            errors.append(
                f"{where}.volumeMounts: the root file system is read-only but /tmp (Ray's /tmp/ray, "
                f"sockets, spill files) is not a writable emptyDir mount"
            )
        env = {e.get("name"): e.get("value") for e in container.get("env") or [] if isinstance(e, dict)}
        for name in HOME_REDIRECTS:
            value = env.get(name)
            if not isinstance(value, str) or writable_mount_for(container, volumes, value) is None:
                errors.append(
                    f"{where}.env.{name}: expected a path in a writable mount ($HOME is read-only), got {value!r}"
                )
    return errors


def pod_template_hardening_errors(template: dict[str, Any], where: str) -> list[str]:
    """Why a PodTemplateSpec is not hardened: the pod-level rules (non-root uid, seccomp, no API token,
    no host namespaces) and :func:`container_hardening_errors` for each container and init container."""
    spec = template.get("spec") if isinstance(template, dict) else None
    if not isinstance(spec, dict):
        return [f"{where}.spec: expected a pod spec"]
    errors = []
    if spec.get("automountServiceAccountToken") is not False:
        errors.append(
            f"{where}.spec.automountServiceAccountToken: expected false (no Kubernetes API token in "
            f"pods that run user code), got {spec.get('automountServiceAccountToken')!r}"
        )
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            errors.append(f"{where}.spec.{key}: expected false")
    psc = spec.get("securityContext") or {}
    # Pod level too: the containers KubeRay injects (autoscaler, wait-gcs-ready) inherit these.
    if psc.get("runAsNonRoot") is not True:
        errors.append(f"{where}.spec.securityContext.runAsNonRoot: expected true, got {psc.get('runAsNonRoot')!r}")
    if psc.get("runAsUser") != RAY_UID:
        errors.append(f"{where}.spec.securityContext.runAsUser: expected {RAY_UID}, got {psc.get('runAsUser')!r}")
    if (psc.get("seccompProfile") or {}).get("type") not in SECCOMP_CONFINED:
        errors.append(
            f"{where}.spec.securityContext.seccompProfile.type: expected RuntimeDefault, got "
            f"{(psc.get('seccompProfile') or {}).get('type')!r}"
        )
    volumes = {v.get("name"): v for v in spec.get("volumes") or [] if isinstance(v, dict)}
    for key in ("initContainers", "containers"):
        for i, container in enumerate(spec.get(key) or []):
            if isinstance(container, dict):
                at = f"{where}.spec.{key}[{i}]"
                errors += container_hardening_errors(container, psc, at, volumes)
                for m in container.get("volumeMounts") or []:
                    if m.get("mountPath", "").rstrip("/") == SERVICE_ACCOUNT_MOUNT:
                        errors.append(f"{at}.volumeMounts: mounts a Kubernetes API token at {SERVICE_ACCOUNT_MOUNT}")
    return errors


def autoscaler_errors(cluster: dict[str, Any], where: str) -> list[str]:
    """With in-tree autoscaling KubeRay adds an autoscaler container to the head pod, configured only by
    ``autoscalerOptions``: it must be hardened like the rest, and, as the head pod mounts no API token,
    it must mount one itself (a projected serviceAccountToken volume of the head pod) or it cannot scale."""
    if not cluster.get("enableInTreeAutoscaling"):
        return []
    options = cluster.get("autoscalerOptions") or {}
    head_spec = ((cluster.get("headGroupSpec") or {}).get("template") or {}).get("spec") or {}
    volumes = {v.get("name"): v for v in head_spec.get("volumes") or [] if isinstance(v, dict)}
    at = f"{where}.autoscalerOptions"
    sidecar = {"securityContext": options.get("securityContext"), "volumeMounts": options.get("volumeMounts")}
    errors = container_hardening_errors(sidecar, head_spec.get("securityContext") or {}, at, None)
    if (options.get("securityContext") or {}).get("readOnlyRootFilesystem") is True and writable_mount_for(
        sidecar, volumes, "/tmp"
    ) != "/tmp":
        errors.append(f"{at}.volumeMounts: the root file system is read-only but /tmp is not a writable emptyDir")
    if head_spec.get("automountServiceAccountToken") is False:
        token = [
            m for m in options.get("volumeMounts") or [] if m.get("mountPath", "").rstrip("/") == SERVICE_ACCOUNT_MOUNT
        ]
        sources = ((volumes.get(token[0].get("name")) or {}).get("projected") or {}).get("sources") if token else None
        if not any("serviceAccountToken" in src for src in sources or []):
            errors.append(
                f"{at}.volumeMounts: the head pod mounts no API token, so the autoscaler needs a "
                f"projected serviceAccountToken volume at {SERVICE_ACCOUNT_MOUNT} to scale"
            )
    return errors


def hardening_errors(obj: dict[str, Any]) -> list[str]:
    """Every hardening problem of a RayCluster or RayJob: its pod templates, the autoscaler sidecar, and
    a RayJob in K8sJobMode without a (hardened) submitter pod template (KubeRay's default is not)."""
    errors = []
    for where, template in pod_templates(obj):
        errors += pod_template_hardening_errors(template, where)
    spec = obj.get("spec") or {}
    if obj.get("kind") == "RayCluster":
        errors += autoscaler_errors(spec, "spec")
    elif obj.get("kind") == "RayJob":
        if isinstance(spec.get("rayClusterSpec"), dict):
            errors += autoscaler_errors(spec["rayClusterSpec"], "spec.rayClusterSpec")
        if spec.get("submissionMode", "K8sJobMode") == "K8sJobMode" and not spec.get("submitterPodTemplate"):
            errors.append(
                "spec.submitterPodTemplate: K8sJobMode runs a submitter pod; KubeRay's default one "
                "runs as the image's user with every default (no securityContext): give a hardened one"
            )
    return errors


# --- NetworkPolicy semantics (what a network plugin admits) -----------------------------------------------
def selector_matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A LabelSelector against labels: matchLabels and matchExpressions; an empty selector matches all."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def policy_admits(
    policy: dict[str, Any],
    policy_namespace: str,
    target_labels: dict[str, str],
    source: dict[str, Any],
    port: int,
    protocol: str = "TCP",
) -> bool | None:
    """Whether one NetworkPolicy admits a connection to a pod with ``target_labels`` in ``policy_namespace``
    from ``source`` on ``port``: True/False, or None when the policy does not select the target (it then
    has no say). ``source`` is ``{"namespace": name, "namespace_labels": {...}, "labels": {...}}`` for a pod
    or ``{"ip": "203.0.113.9"}`` for anything else; named ports and endPort ranges are honoured only as
    numbers."""
    spec = policy.get("spec") or {}
    if not selector_matches(spec.get("podSelector"), target_labels):
        return None
    if "Ingress" not in (spec.get("policyTypes") or ["Ingress"]):
        return None
    for rule in spec.get("ingress") or []:
        if rule.get("ports"):
            ok_port = any(
                p.get("protocol", "TCP") == protocol
                and (
                    p.get("port") is None
                    or (isinstance(p.get("port"), int) and p["port"] <= port <= p.get("endPort", p["port"]))
                )
                for p in rule["ports"]
            )
            if not ok_port:
                continue
        peers = rule.get("from")
        if not peers:
            return True  # no `from`: every source
        for peer in peers:
            if "ipBlock" in peer:
                if "ip" in source:
                    return True  # (CIDRs not evaluated: any ipBlock admits an outside address)
                continue
            if "ip" in source:
                continue
            ns_selector, pod_selector = peer.get("namespaceSelector"), peer.get("podSelector")
            if ns_selector is None:
                ns_ok = source["namespace"] == policy_namespace
            else:
                ns_labels = {"kubernetes.io/metadata.name": source["namespace"], **source.get("namespace_labels", {})}
                ns_ok = selector_matches(ns_selector, ns_labels)
            if ns_ok and (pod_selector is None or selector_matches(pod_selector, source.get("labels") or {})):
                return True
    return False


# --- the whole thing ------------------------------------------------------------------------------------
def validate(obj: Any, crds: CRDSchemas) -> list[str]:
    """All errors of one custom resource: defaulting + strict schema validation + semantic checks."""
    if not isinstance(obj, dict):
        return [f"expected a mapping, got {type(obj).__name__}"]
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    schema = crds.schema_for(str(api_version), str(kind))
    if schema is None:
        return [f"apiVersion/kind: no served CRD version for {api_version!r} {kind!r} in {crds.folder}"]
    stored = apply_defaults(obj, schema)
    errors = schema_errors(stored, schema)
    try:
        errors += semantic_errors(stored)
    except (TypeError, AttributeError, ValueError) as exc:  # a wrong type the schema has already reported
        if not errors:
            errors.append(f"semantic checks failed: {exc!r}")
    return errors


# --- kustomize (the bits used here, without the kustomize binary) ---------------------------------------
def kustomize_images(objs: Iterable[dict[str, Any]], images: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Copies of ``objs`` with kustomize's ``images:`` transformer applied.

    Like kustomize, it rewrites the ``image`` of every entry of any ``containers``/``initContainers`` list,
    however deeply nested (custom resources included), matching on the image name without tag or digest.
    """
    out = [copy.deepcopy(o) for o in objs]
    for obj in out:
        for _, container in iter_containers(obj):
            image = container.get("image")
            if not isinstance(image, str):
                continue
            name, sep, ref = split_image(image)
            for rule in images or []:
                if rule.get("name") != name:
                    continue
                new_name = rule.get("newName", name)
                if "digest" in rule:
                    container["image"] = f"{new_name}@{rule['digest']}"
                elif "newTag" in rule:
                    container["image"] = f"{new_name}:{rule['newTag']}"
                else:
                    container["image"] = f"{new_name}{sep}{ref}"
                break
    return out


def split_image(image: str) -> tuple[str, str, str]:
    if "@" in image:
        name, digest = image.split("@", 1)
        return name, "@", digest
    head, _, last = image.rpartition("/")
    if ":" in last:
        base, tag = last.rsplit(":", 1)
        return (f"{head}/{base}" if head else base), ":", tag
    return image, "", ""
