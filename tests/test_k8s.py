"""The KubeRay manifests in k8s/, validated offline against the KubeRay CRDs.

The CRDs (KubeRay v1.7.0) live in ``../shared/schemas/kuberay/`` relative to the repository root: CI checks
the repository out with ``shared/`` beside it. Without them the schema tests skip, saying so; the wiring
tests (kustomization, ConfigMap, volumes) run anyway.
"""
from __future__ import annotations

import copy
import importlib.metadata
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

try:  # tests/ as a package or as a rootdir on sys.path
    from . import k8s_validate as kv
except ImportError:
    import k8s_validate as kv

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "k8s"
CRD_DIR = (REPO / ".." / "shared" / "schemas" / "kuberay").resolve()
KUSTOMIZATION = K8S / "kustomization.yaml"
SWEEP_CONFIG_PATH = "/etc/sweep/sweep.yaml"

MANIFEST_FILES = sorted(p for p in K8S.iterdir() if p.suffix in (".yaml", ".yml")) if K8S.is_dir() else []
DOCS: list[tuple[str, dict[str, Any]]] = [
    (p.name, doc) for p in MANIFEST_FILES if p != KUSTOMIZATION for doc in kv.load_yaml_documents(p)]
KUBERAY_KINDS = {"RayCluster", "RayJob", "RayService"}
CUSTOM_RESOURCES = [(f, d) for f, d in DOCS if d.get("kind") in KUBERAY_KINDS]


def _id(item: tuple[str, dict[str, Any]]) -> str:
    name, doc = item
    return f"{name}:{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"


@pytest.fixture(scope="session")
def crds(request) -> kv.CRDSchemas:
    if not CRD_DIR.is_dir():
        pytest.skip(f"KubeRay CRDs not found at {CRD_DIR} (check out the shared/ folder beside the repository)")
    cache = getattr(request.config, "cache", None)  # absent with -p no:cacheprovider
    schemas = kv.CRDSchemas(CRD_DIR, kinds={d["kind"] for _, d in CUSTOM_RESOURCES} | {"RayCluster", "RayJob"},
                            cache_dir=cache.mkdir("kuberay-crds") if cache is not None else None)
    if not {"RayCluster", "RayJob"} <= schemas.kinds():
        pytest.skip(f"{CRD_DIR} holds no RayCluster/RayJob CRDs (found {sorted(schemas.kinds())})")
    return schemas


@pytest.fixture(scope="session")
def kustomization() -> dict[str, Any]:
    return yaml.safe_load(KUSTOMIZATION.read_text())


def _one(kind: str) -> dict[str, Any]:
    found = [d for _, d in DOCS if d.get("kind") == kind]
    assert len(found) == 1, f"expected one {kind} in k8s/, found {len(found)}"
    return copy.deepcopy(found[0])


def _cluster_specs() -> list[tuple[str, dict[str, Any]]]:
    out = [("RayCluster", _one("RayCluster")["spec"])]
    out.append(("RayJob.rayClusterSpec", _one("RayJob")["spec"]["rayClusterSpec"]))
    return out


# --- files and the kustomization ------------------------------------------------------------------------
def test_manifests_exist():
    names = {p.name for p in MANIFEST_FILES}
    assert {"kustomization.yaml", "raycluster.yaml", "rayjob.yaml"} <= names, names
    assert {d["kind"] for _, d in DOCS} >= {"RayCluster", "RayJob", "ConfigMap"}


@pytest.mark.parametrize("path", MANIFEST_FILES, ids=lambda p: p.name)
def test_every_document_is_a_kubernetes_object(path: Path):
    docs = kv.load_yaml_documents(path)
    assert docs, f"{path.name}: empty"
    for doc in docs:
        assert isinstance(doc, dict) and doc.get("apiVersion") and doc.get("kind"), f"{path.name}: {doc!r:.80}"


def test_kustomization_lists_files_that_exist(kustomization):
    assert kustomization["kind"] == "Kustomization"
    listed = list(kustomization.get("resources", []))
    for gen in kustomization.get("configMapGenerator", []) + kustomization.get("secretGenerator", []):
        listed += [f.split("=", 1)[-1] for f in gen.get("files", [])]
    listed += [p["path"] for p in kustomization.get("patches", []) if "path" in p]
    missing = [f for f in listed if not (K8S / f).is_file()]
    assert not missing, f"kustomization.yaml lists files that do not exist: {missing}"


def test_kustomization_ties_every_manifest(kustomization):
    listed = set(kustomization.get("resources", []))
    for gen in kustomization.get("configMapGenerator", []):
        listed |= {f.split("=", 1)[-1] for f in gen.get("files", [])}
    orphans = [p.name for p in MANIFEST_FILES if p != KUSTOMIZATION and p.name not in listed]
    assert not orphans, f"manifests that `kubectl apply -k k8s/` would not apply: {orphans}"


def test_kustomization_image_rule_matches_and_stays_pinned(kustomization):
    rules = kustomization.get("images", [])
    images = {c["image"] for _, d in DOCS for _, c in kv.iter_containers(d)}
    for rule in rules:
        assert any(kv.split_image(i)[0] == rule["name"] for i in images), f"images rule {rule} matches nothing"
    built = kv.kustomize_images([d for _, d in DOCS], rules)
    for doc in built:
        for path, container in kv.iter_containers(doc):
            assert kv.image_problem(container["image"]) is None, (doc["kind"], path, container["image"])


# --- the CRDs -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("item", CUSTOM_RESOURCES, ids=_id)
def test_custom_resource_is_valid(crds, kustomization, item):
    _, raw = item
    assert kv.validate(raw, crds) == []
    (built,) = kv.kustomize_images([raw], kustomization.get("images"))
    assert kv.validate(built, crds) == []


@pytest.mark.parametrize("item", CUSTOM_RESOURCES, ids=_id)
def test_spec_alone_is_valid(crds, item):
    _, raw = item
    schema = crds.schema_for(raw["apiVersion"], raw["kind"])
    spec_schema = schema["properties"]["spec"]
    assert kv.schema_errors(kv.apply_defaults(raw["spec"], spec_schema), spec_schema) == []


def test_ray_version_is_the_installed_ray():
    try:
        installed = importlib.metadata.version("ray")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("ray is not installed")
    for where, spec in _cluster_specs():
        assert spec["rayVersion"] == installed, f"{where}.rayVersion {spec['rayVersion']} != installed ray {installed}"


def test_cluster_shape():
    for where, spec in _cluster_specs():
        assert spec["authOptions"] == {"mode": "token"}, where
        head = spec["headGroupSpec"]
        assert head.get("serviceType", "ClusterIP") == "ClusterIP", where
        assert "nvidia.com/gpu" not in str(head["template"]), f"{where}: the head is CPU only"
        (gpu,) = spec["workerGroupSpecs"]
        limits = gpu["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert int(limits["nvidia.com/gpu"]) >= 1, where
        assert 0 <= gpu["minReplicas"] <= gpu["replicas"] <= gpu["maxReplicas"], where


def test_rayjob_runs_the_sweep_and_cleans_up():
    job = _one("RayJob")
    assert len(job["metadata"]["name"]) <= 47
    spec = job["spec"]
    assert spec["entrypoint"].split() == ["sweep", "run", SWEEP_CONFIG_PATH]
    assert spec["shutdownAfterJobFinishes"] is True
    assert spec["ttlSecondsAfterFinished"] > 0


# --- wiring: ConfigMap -> /etc/sweep/sweep.yaml, PVC -> storage ------------------------------------------
def _sweep_yaml() -> tuple[dict[str, Any], str]:
    cm = [d for _, d in DOCS if d["kind"] == "ConfigMap" and "sweep.yaml" in (d.get("data") or {})]
    assert len(cm) == 1, "expected one ConfigMap with a sweep.yaml key"
    return cm[0], cm[0]["data"]["sweep.yaml"]


def test_configmap_sweep_yaml_parses():
    _, text = _sweep_yaml()
    sweep = yaml.safe_load(text)
    assert isinstance(sweep, dict)
    for key in ("name", "workload", "max_epochs", "space", "storage"):
        assert key in sweep, f"sweep.yaml in the ConfigMap has no {key!r}"
    assert sweep["resources"]["gpu"] > 0, "the k8s sweep should ask for (a share of) a GPU per trial"


def test_configmap_sweep_yaml_is_a_valid_sweep_config():
    config = pytest.importorskip("orchestrator.config")
    if not hasattr(config, "parse"):
        pytest.skip("orchestrator.config.parse not available")
    _, text = _sweep_yaml()
    config.parse(yaml.safe_load(text), "k8s ConfigMap sweep-config/sweep.yaml")


def _volumes(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in template["spec"].get("volumes", [])}


def _mount_for(container: dict[str, Any], volumes: dict[str, Any], path: str) -> tuple[dict, dict] | None:
    """The (volumeMount, volume) that holds ``path`` in a container, deepest mount first."""
    mounts = sorted(container.get("volumeMounts", []), key=lambda m: -len(m["mountPath"]))
    for m in mounts:
        root = m["mountPath"].rstrip("/")
        if path == root or path.startswith(root + "/"):
            return m, volumes[m["name"]]
    return None


def test_sweep_yaml_is_mounted_where_the_entrypoint_reads_it():
    cm, _ = _sweep_yaml()
    for where, spec in _cluster_specs():
        template = spec["headGroupSpec"]["template"]
        found = _mount_for(template["spec"]["containers"][0], _volumes(template), SWEEP_CONFIG_PATH)
        assert found, f"{where}: nothing mounted at {SWEEP_CONFIG_PATH} in the head container"
        mount, volume = found
        assert volume.get("configMap", {}).get("name") == cm["metadata"]["name"], where
        key = SWEEP_CONFIG_PATH[len(mount["mountPath"].rstrip("/")) + 1:]
        items = volume["configMap"].get("items")
        assert (key in cm["data"]) if not items else any(i["path"] == key for i in items), where


def test_storage_is_a_shared_volume_on_every_ray_pod():
    _, text = _sweep_yaml()
    storage = yaml.safe_load(text)["storage"]
    claims = {d["metadata"]["name"]: d for _, d in DOCS if d["kind"] == "PersistentVolumeClaim"}
    for where, spec in _cluster_specs():
        groups = [("head", spec["headGroupSpec"])] + [(g["groupName"], g) for g in spec["workerGroupSpecs"]]
        for gname, group in groups:
            template = group["template"]
            found = _mount_for(template["spec"]["containers"][0], _volumes(template), storage)
            assert found, f"{where}/{gname}: storage {storage} is not on a mounted volume"
            claim = found[1].get("persistentVolumeClaim", {}).get("claimName")
            assert claim in claims, f"{where}/{gname}: {storage} is not on a PersistentVolumeClaim from k8s/"
            assert "ReadWriteMany" in claims[claim]["spec"]["accessModes"], "trials on several pods write there"


# --- a broken copy must fail ------------------------------------------------------------------------------
def _worker(o):
    return o["spec"]["workerGroupSpecs"][0]


def _head_container(o):
    return o["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]


def _set(path: list[Any], value: Any) -> Callable[[dict], None]:
    def mutate(o: dict) -> None:
        node = o
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return mutate


def _delete(path: list[Any]) -> Callable[[dict], None]:
    def mutate(o: dict) -> None:
        node = o
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    return mutate


def _rename(path: list[Any], new: str) -> Callable[[dict], None]:
    def mutate(o: dict) -> None:
        node = o
        for key in path[:-1]:
            node = node[key]
        node[new] = node.pop(path[-1])
    return mutate


W = ["spec", "workerGroupSpecs", 0]
HEAD_C = ["spec", "headGroupSpec", "template", "spec", "containers", 0]
JOB_W = ["spec", "rayClusterSpec", "workerGroupSpecs", 0]

BROKEN: list[tuple[str, str, Callable[[dict], None], str]] = [
    ("typo-workerGroupSpec", "RayCluster", _rename(["spec", "workerGroupSpecs"], "workerGroupSpec"),
     "'workerGroupSpec' was unexpected"),
    ("replicas-wrong-type", "RayCluster", _set(W + ["replicas"], "two"), "is not of type 'integer'"),
    ("maxReplicas-overflows-int32", "RayCluster", _set(W + ["maxReplicas"], 2**31), "int32"),
    ("missing-groupName", "RayCluster", _delete(W + ["groupName"]), "'groupName' is a required property"),
    ("missing-headGroupSpec", "RayCluster", _delete(["spec", "headGroupSpec"]),
     "'headGroupSpec' is a required property"),
    ("missing-container-name", "RayCluster", _delete(HEAD_C + ["name"]), "'name' is a required property"),
    ("min-greater-than-max", "RayCluster",
     lambda o: _worker(o).update(minReplicas=5, maxReplicas=1, replicas=1), "minReplicas (5) > maxReplicas (1)"),
    ("image-latest", "RayCluster", _set(HEAD_C + ["image"], "rayproject/ray:latest"), "pin a version"),
    ("image-untagged", "RayCluster", _set(W + ["template", "spec", "containers", 0, "image"], "rayproject/ray"),
     "pin a version"),
    ("authOptions-mode-missing", "RayCluster", _delete(["spec", "authOptions", "mode"]), "authOptions.mode"),
    ("authOptions-mode-bogus", "RayCluster", _set(["spec", "authOptions", "mode"], "password"),
     "is not one of ['disabled', 'token']"),
    ("token-needs-ray-2.52", "RayCluster", _set(["spec", "rayVersion"], "2.51.0"), ">= 2.52.0"),
    ("head-LoadBalancer", "RayCluster", _set(["spec", "headGroupSpec", "serviceType"], "LoadBalancer"),
     "expected ClusterIP"),
    ("no-gpu-limit", "RayCluster", _delete(W + ["template", "spec", "containers", 0, "resources", "limits",
                                                 "nvidia.com/gpu"]), "GPU worker group"),
    ("unknown-field-in-pod-template", "RayCluster", _set(HEAD_C + ["imagePullPolicyy"], "Always"),
     "'imagePullPolicyy' was unexpected"),
    ("unknown-field-in-metadata", "RayCluster", _rename(["metadata", "labels"], "lables"),
     "'lables' was unexpected"),
    ("cluster-name-too-long", "RayCluster", _set(["metadata", "name"], "s" * 54), "at most 53"),
    ("job-name-too-long", "RayJob", _set(["metadata", "name"], "sweep-" + "x" * 42), "at most 47"),
    ("job-name-not-dns", "RayJob", _set(["metadata", "name"], "Sweep_Digits"), "DNS-1035"),
    ("job-typo-in-cluster-spec", "RayJob", _rename(["spec", "rayClusterSpec", "workerGroupSpecs"],
                                                   "workerGroupSpec"), "'workerGroupSpec' was unexpected"),
    ("job-shutdown-wrong-type", "RayJob", _set(["spec", "shutdownAfterJobFinishes"], "yes"),
     "is not of type 'boolean'"),
    ("job-ttl-without-shutdown", "RayJob", _set(["spec", "shutdownAfterJobFinishes"], False),
     "needs shutdownAfterJobFinishes"),
    ("job-min-greater-than-max", "RayJob", _set(JOB_W + ["minReplicas"], 9), "minReplicas (9) > maxReplicas"),
    ("job-auth-off", "RayJob", _set(["spec", "rayClusterSpec", "authOptions"], {"mode": "disabled"}),
     "expected 'token'"),
    ("job-no-cluster", "RayJob", _delete(["spec", "rayClusterSpec"]), "rayClusterSpec or clusterSelector"),
]


@pytest.mark.parametrize("kind, mutate, expected", [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_broken_copy_is_rejected(crds, kind, mutate, expected):
    good = _one(kind)
    assert kv.validate(good, crds) == []
    broken = copy.deepcopy(good)
    mutate(broken)
    errors = kv.validate(broken, crds)
    assert errors, "the broken copy passed validation"
    assert any(expected in e for e in errors), errors


ACCEPTED: list[tuple[str, Callable[[dict], None]]] = [
    ("null-field-dropped", _set(["spec", "suspend"], None)),
    ("min-max-replicas-defaulted", lambda o: [_worker(o).pop(k) for k in ("minReplicas", "maxReplicas")]),
    ("image-by-digest", _set(HEAD_C + ["image"], "rayproject/ray@sha256:" + "0" * 64)),
]


@pytest.mark.parametrize("mutate", [a[1] for a in ACCEPTED], ids=[a[0] for a in ACCEPTED])
def test_valid_variants_are_accepted(crds, mutate):
    obj = _one("RayCluster")
    mutate(obj)
    assert kv.validate(obj, crds) == []


# --- the validator itself ---------------------------------------------------------------------------------
def test_strict_schema_honours_preserve_unknown_fields():
    raw = {
        "type": "object",
        "properties": {
            "metadata": {"type": "object"},
            "typed": {"type": "object", "properties": {"a": {"type": "integer"}}},
            "preserved": {"type": "object", "properties": {"a": {"type": "integer"}},
                          "x-kubernetes-preserve-unknown-fields": True},
            "opaque": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "pruned": {"type": "object"},
            "when": {"type": "string", "nullable": True},
            "n": {"type": "integer", "default": 3},
        },
    }
    schema = kv.strict_schema(raw)
    ok = {"typed": {"a": 1}, "preserved": {"a": 1, "b": 2}, "opaque": {"x": {"y": 1}}, "when": None}
    stored = kv.apply_defaults(ok, schema)
    assert stored["n"] == 3 and stored["when"] is None
    assert kv.schema_errors(stored, schema) == []
    assert kv.schema_errors(kv.apply_defaults({"typed": {"b": 1}}, schema), schema)
    assert kv.schema_errors(kv.apply_defaults({"pruned": {"b": 1}}, schema), schema)
    assert kv.schema_errors({"preserved": {"a": "x"}}, schema), "known fields are still typed"
    assert kv.schema_errors({"metadata": {"nmae": "x"}}, schema), "ObjectMeta is strict"
    assert kv.apply_defaults({"n": None}, schema)["n"] == 3, "a null is dropped, then defaulted"


def test_kustomize_images_rewrites_nested_containers():
    obj = {"spec": {"a": [{"template": {"spec": {"containers": [{"name": "x", "image": "rayproject/ray:1.0"},
                                                                {"name": "y", "image": "busybox:1"}]}}}]}}
    (out,) = kv.kustomize_images([obj], [{"name": "rayproject/ray", "newName": "reg/img", "newTag": "2"}])
    images = [c["image"] for _, c in kv.iter_containers(out)]
    assert images == ["reg/img:2", "busybox:1"]
    assert obj["spec"]["a"][0]["template"]["spec"]["containers"][0]["image"] == "rayproject/ray:1.0"
