"""The KubeRay manifests in k8s/, validated offline against the KubeRay CRDs, and their hardening.

The CRDs (KubeRay v1.7.0) live in ``../shared/schemas/kuberay/`` relative to the repository root: CI checks
the repository out with ``shared/`` beside it. Without them the schema tests fail, naming the folder; set
``SWEEP_KUBERAY_CRDS`` to another folder that holds them, or to ``skip`` to skip those tests on purpose (the
skip then says so). The wiring and hardening tests (kustomization, ConfigMap, volumes, securityContext,
NetworkPolicy, Secret, Dockerfile) need no CRDs.
"""

from __future__ import annotations

import base64
import binascii
import copy
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

try:  # tests/ as a package or as a rootdir on sys.path
    from . import k8s_validate as kv
except ImportError:
    import k8s_validate as kv

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "k8s"
CRD_DIR = (REPO / ".." / "shared" / "schemas" / "kuberay").resolve()
CRD_DIR_ENV = "SWEEP_KUBERAY_CRDS"  # a folder holding the CRDs instead of CRD_DIR, or "skip"
KUSTOMIZATION = K8S / "kustomization.yaml"
SECRET_TEMPLATE = K8S / "ray-auth-secret.yaml.template"
SWEEP_CONFIG_PATH = "/etc/sweep/sweep.yaml"

MANIFEST_FILES = sorted(p for p in K8S.iterdir() if p.suffix in (".yaml", ".yml")) if K8S.is_dir() else []
DOCS: list[tuple[str, dict[str, Any]]] = [
    (p.name, doc) for p in MANIFEST_FILES if p != KUSTOMIZATION for doc in kv.load_yaml_documents(p)
]
KUBERAY_KINDS = {"RayCluster", "RayJob", "RayService"}
CUSTOM_RESOURCES = [(f, d) for f, d in DOCS if d.get("kind") in KUBERAY_KINDS]


def _id(item: tuple[str, dict[str, Any]]) -> str:
    name, doc = item
    return f"{name}:{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"


def crd_folder() -> Path | None:
    """Where the KubeRay CRDs are: CRD_DIR, or the folder named by $SWEEP_KUBERAY_CRDS; None when that
    variable is ``skip``."""
    chosen = os.environ.get(CRD_DIR_ENV, "").strip()
    if chosen.lower() == "skip":
        return None
    return Path(chosen).expanduser().resolve() if chosen else CRD_DIR


@pytest.fixture(scope="session")
def crds(request) -> kv.CRDSchemas:
    folder = crd_folder()
    if folder is None:
        pytest.skip(f"KubeRay CRD schema checks skipped on request ({CRD_DIR_ENV}=skip)")
    if not folder.is_dir():
        pytest.fail(
            f"KubeRay CRDs not found: {folder} is missing. Check out the shared/ folder beside the "
            f"repository (it holds schemas/kuberay), or set {CRD_DIR_ENV} to a folder with the KubeRay "
            f"CRDs, or {CRD_DIR_ENV}=skip to skip the schema checks",
            pytrace=False,
        )
    cache = getattr(request.config, "cache", None)  # absent with -p no:cacheprovider
    schemas = kv.CRDSchemas(
        folder,
        kinds={d["kind"] for _, d in CUSTOM_RESOURCES} | {"RayCluster", "RayJob"},
        cache_dir=cache.mkdir("kuberay-crds") if cache is not None else None,
    )
    if not {"RayCluster", "RayJob"} <= schemas.kinds():
        pytest.fail(
            f"{folder} holds no RayCluster/RayJob CRDs (found {sorted(schemas.kinds())}): expected "
            f"KubeRay's ray.io_rayclusters.yaml and ray.io_rayjobs.yaml",
            pytrace=False,
        )
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
        assert spec["authOptions"]["mode"] == "token", where
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
    from orchestrator import config  # an import error in the code under test is a failure, not a skip

    _, text = _sweep_yaml()
    sweep = config.parse(yaml.safe_load(text), "k8s ConfigMap sweep-config/sweep.yaml")
    assert sweep.name == yaml.safe_load(text)["name"]


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
        key = SWEEP_CONFIG_PATH[len(mount["mountPath"].rstrip("/")) + 1 :]
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


# --- hardening: every pod template, the autoscaler sidecar ------------------------------------------------
def _pod_templates() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for kind in ("RayCluster", "RayJob"):
        out += [(f"{kind}:{where}", template) for where, template in kv.pod_templates(_one(kind))]
    return out


POD_TEMPLATES = _pod_templates() if {"RayCluster", "RayJob"} <= {d.get("kind") for _, d in DOCS} else []
TEMPLATE_IDS = [where for where, _ in POD_TEMPLATES]


def _containers(template: dict[str, Any]) -> list[dict[str, Any]]:
    spec = template["spec"]
    return list(spec.get("initContainers") or []) + list(spec["containers"])


def test_every_pod_template_is_checked():
    assert TEMPLATE_IDS == [
        "RayCluster:spec.headGroupSpec.template",
        "RayCluster:spec.workerGroupSpecs[0].template",
        "RayJob:spec.rayClusterSpec.headGroupSpec.template",
        "RayJob:spec.rayClusterSpec.workerGroupSpecs[0].template",
        "RayJob:spec.submitterPodTemplate",  # K8sJobMode: without it KubeRay's default submitter is not hardened
    ]


@pytest.mark.parametrize("template", [t for _, t in POD_TEMPLATES], ids=TEMPLATE_IDS)
def test_pod_runs_as_the_ray_user_never_root(template):
    pod = template["spec"]["securityContext"]
    # Pod level: the containers KubeRay injects (autoscaler, wait-gcs-ready) inherit it.
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] == 1000 and pod["runAsGroup"] == 100  # `ray:users` in rayproject/ray images
    for c in _containers(template):
        sc = c["securityContext"]
        assert sc.get("runAsNonRoot", True) is True and sc.get("runAsUser", 1000) == 1000, c["name"]
        assert sc.get("privileged", False) is False, c["name"]


@pytest.mark.parametrize("template", [t for _, t in POD_TEMPLATES], ids=TEMPLATE_IDS)
def test_containers_cannot_escalate_and_hold_no_capabilities(template):
    for c in _containers(template):
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False, c["name"]
        assert sc["capabilities"]["drop"] == ["ALL"], c["name"]
        assert not sc["capabilities"].get("add"), c["name"]


@pytest.mark.parametrize("template", [t for _, t in POD_TEMPLATES], ids=TEMPLATE_IDS)
def test_pod_is_seccomp_confined(template):
    assert template["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for c in _containers(template):
        assert c["securityContext"].get("seccompProfile", {"type": "RuntimeDefault"}) == {"type": "RuntimeDefault"}


@pytest.mark.parametrize("template", [t for _, t in POD_TEMPLATES], ids=TEMPLATE_IDS)
def test_root_file_system_is_read_only_and_ray_writes_to_empty_dirs(template):
    volumes = _volumes(template)
    for c in _containers(template):
        assert c["securityContext"]["readOnlyRootFilesystem"] is True, c["name"]
        # Ray writes /tmp/ray (session, logs, sockets); $HOME is read-only, so caches go under /tmp.
        found = _mount_for(c, volumes, "/tmp/ray/session_latest")
        assert found and found[0]["mountPath"] == "/tmp" and "emptyDir" in found[1], c["name"]
        assert not found[0].get("readOnly"), c["name"]
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        for name in ("XDG_CACHE_HOME", "XDG_CONFIG_HOME"):
            assert str(env.get(name)).startswith("/tmp/"), f"{c['name']}: {name}={env.get(name)!r}"


@pytest.mark.parametrize("template", [t for _, t in POD_TEMPLATES], ids=TEMPLATE_IDS)
def test_pod_mounts_no_kubernetes_api_token(template):
    assert template["spec"]["automountServiceAccountToken"] is False
    for c in _containers(template):
        assert not any(m["mountPath"].startswith("/var/run/secrets/kubernetes.io") for m in c.get("volumeMounts", []))


def test_autoscaler_sidecar_is_hardened_and_alone_holds_the_api_token():
    for where, spec in _cluster_specs():
        assert spec["enableInTreeAutoscaling"] is True, where
        options = spec["autoscalerOptions"]
        sc = options["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 1000, where
        assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"], where
        assert sc["readOnlyRootFilesystem"] is True and sc["seccompProfile"] == {"type": "RuntimeDefault"}, where
        head = spec["headGroupSpec"]["template"]
        volumes = _volumes(head)
        mounts = {m["mountPath"]: m for m in options["volumeMounts"]}
        assert "emptyDir" in volumes[mounts["/tmp"]["name"]], where
        # The autoscaler patches the RayCluster through the API with the head pod's service account: it
        # mounts the token the kubelet would have mounted everywhere (token, CA, namespace), read-only.
        token = mounts["/var/run/secrets/kubernetes.io/serviceaccount"]
        assert token["readOnly"] is True, where
        sources = volumes[token["name"]]["projected"]["sources"]
        assert any(src.get("serviceAccountToken", {}).get("path") == "token" for src in sources), where
        assert any(item["path"] == "ca.crt" for src in sources for item in src.get("configMap", {}).get("items", []))
        assert any(
            item["path"] == "namespace" for src in sources for item in src.get("downwardAPI", {}).get("items", [])
        )


def test_validator_finds_no_hardening_problem():
    for kind in ("RayCluster", "RayJob"):
        assert kv.hardening_errors(_one(kind)) == [], kind


# --- the auth token: from a Secret the user makes, never committed -----------------------------------------
def test_auth_token_comes_from_a_secret_the_user_creates():
    template = yaml.safe_load(SECRET_TEMPLATE.read_text())
    assert template["kind"] == "Secret"
    for where, spec in _cluster_specs():
        # secretName set: KubeRay neither generates a token nor a Secret, and reads key auth_token from this one.
        assert spec["authOptions"] == {"mode": "token", "secretName": template["metadata"]["name"]}, where
    readme = (K8S / "README.md").read_text()
    assert f"kubectl create secret generic {template['metadata']['name']} --from-literal=auth_token=" in readme


def test_no_secret_is_committed_or_applied():
    assert not [f for f, d in DOCS if d.get("kind") == "Secret"], "a Secret in k8s/*.yaml would be applied"
    assert SECRET_TEMPLATE.suffix != ".yaml" and SECRET_TEMPLATE.name not in KUSTOMIZATION.read_text()
    template = yaml.safe_load(SECRET_TEMPLATE.read_text())
    assert not template.get("stringData")
    (value,) = template["data"].values()
    # A placeholder the API server refuses (not base64): applied by mistake, it cannot start a cluster
    # whose token is in the repository.
    with pytest.raises(binascii.Error):
        base64.b64decode(value, validate=True)


# --- the NetworkPolicy -------------------------------------------------------------------------------------
NAMESPACE = "sweeps"  # wherever `kubectl apply -k` puts them; the policy names no namespace


def _kuberay_pod_labels(cluster: str, node_type: str, group: str, template: dict[str, Any]) -> dict[str, str]:
    """The labels KubeRay v1.7 gives a Ray pod (ray-operator/controllers/ray/common/pod.go, labelPod)."""
    labels = {
        "ray.io/is-ray-node": "yes",
        "ray.io/cluster": cluster,
        "ray.io/node-type": node_type,
        "ray.io/group": group,
        "ray.io/identifier": f"{cluster}-{node_type}",
        "app.kubernetes.io/name": "kuberay",
        "app.kubernetes.io/created-by": "kuberay-operator",
    }
    extra = (template.get("metadata") or {}).get("labels") or {}
    owned = ("ray.io/node-type", "ray.io/group", "ray.io/cluster")
    return {**labels, **{k: v for k, v in extra.items() if k not in owned}}


def _ray_pods() -> list[tuple[str, dict[str, str]]]:
    out = []
    for kind, name in (("RayCluster", "sweep"), ("RayJob", "sweep-digits-lr-x7k2p")):  # a RayJob's cluster name
        spec = _one(kind)["spec"] if kind == "RayCluster" else _one(kind)["spec"]["rayClusterSpec"]
        out.append((f"{kind} head", _kuberay_pod_labels(name, "head", "headgroup", spec["headGroupSpec"]["template"])))
        for g in spec["workerGroupSpecs"]:
            out.append((f"{kind} {g['groupName']}", _kuberay_pod_labels(name, "worker", g["groupName"], g["template"])))
    return out


def _policy() -> dict[str, Any]:
    (policy,) = [d for _, d in DOCS if d.get("kind") == "NetworkPolicy"]
    assert policy["apiVersion"] == "networking.k8s.io/v1" and "namespace" not in policy["metadata"]
    return policy


def _pod(namespace: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"namespace": namespace, "labels": labels or {}}


def test_networkpolicy_selects_every_ray_pod_and_only_them():
    policy = _policy()
    for where, labels in _ray_pods():
        assert kv.policy_admits(policy, NAMESPACE, labels, _pod(NAMESPACE), 8265) is not None, where
    submitter = {"ray.io/originated-from-cr-name": "sweep-digits-lr", "ray.io/originated-from-crd": "RayJob"}
    assert kv.policy_admits(policy, NAMESPACE, submitter, _pod(NAMESPACE), 8265) is None


RAY_PORTS = {6379: "GCS", 8265: "dashboard and Jobs API", 10001: "Ray Client"}
OTHER_PORTS = [8080, 8076, 52365, 10002, 22]  # metrics, object manager, dashboard agent, a worker, ssh


def test_networkpolicy_admits_ray_ports_only_from_inside_the_namespace():
    policy = _policy()
    ray_pods = _ray_pods()
    head = dict(ray_pods)["RayCluster head"]
    other_ray_pod = dict(ray_pods)["RayJob gpu"]
    for port in [*RAY_PORTS, *OTHER_PORTS]:
        for where, labels in ray_pods:  # Ray pods talk to each other on any port
            assert kv.policy_admits(policy, NAMESPACE, labels, _pod(NAMESPACE, other_ray_pod), port), (where, port)
        inside = kv.policy_admits(policy, NAMESPACE, head, _pod(NAMESPACE, {"app": "notebook"}), port)
        assert inside is (port in RAY_PORTS), f"a non-Ray pod of the namespace, port {port}"
        outsiders = [
            _pod("other", {"app": "notebook"}),
            _pod("other", other_ray_pod),
            {"ip": "203.0.113.9"},
            _pod("kube-system", {"app.kubernetes.io/name": "kuberay-operator"}),
        ]
        for source in outsiders:
            assert not kv.policy_admits(policy, NAMESPACE, head, source, port), (source, port)


def test_networkpolicy_lets_the_kuberay_operator_follow_jobs():
    policy = _policy()
    head = dict(_ray_pods())["RayJob head"]
    operator_ns = [
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for rule in policy["spec"]["ingress"]
        for peer in rule.get("from", [])
        if "namespaceSelector" in peer
    ]
    assert operator_ns == ["default"], "the operator's namespace (README.md says how to change it)"
    operator = _pod("default", {"app.kubernetes.io/name": "kuberay-operator", "app.kubernetes.io/instance": "kuberay"})
    assert kv.policy_admits(policy, NAMESPACE, head, operator, 8265)
    for port in (6379, 10001, *OTHER_PORTS):
        assert not kv.policy_admits(policy, NAMESPACE, head, operator, port), port
    assert not kv.policy_admits(policy, NAMESPACE, head, _pod("default", {"app": "other"}), 8265)


def test_kustomization_leaves_the_policy_selector_alone(kustomization):
    # commonLabels / includeSelectors would add app.kubernetes.io/name: sweep to the podSelectors, which
    # Ray pods do not carry: the policy would select nothing and admit everything.
    assert "commonLabels" not in kustomization
    assert not any(entry.get("includeSelectors") for entry in kustomization.get("labels", []))


def test_policy_admits_follows_networkpolicy_semantics():
    target = {"app": "x"}
    allow_all = {"spec": {"podSelector": {}, "ingress": [{}]}}
    deny_all = {"spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
    assert kv.policy_admits(allow_all, "ns", target, {"ip": "198.51.100.1"}, 1)
    assert kv.policy_admits(deny_all, "ns", target, _pod("ns"), 1) is False
    other_app = {"spec": {"podSelector": {"matchLabels": {"app": "y"}}}}
    assert kv.policy_admits(other_app, "ns", target, _pod("ns"), 1) is None
    egress_only = {"spec": {"podSelector": {}, "policyTypes": ["Egress"]}}
    assert kv.policy_admits(egress_only, "ns", target, _pod("ns"), 1) is None
    any_ns = {"spec": {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {}}], "ports": [{"port": 80}]}]}}
    assert kv.policy_admits(any_ns, "ns", target, _pod("elsewhere"), 80)
    assert not kv.policy_admits(any_ns, "ns", target, _pod("elsewhere"), 81)
    assert not kv.policy_admits(any_ns, "ns", target, {"ip": "198.51.100.1"}, 80)
    ranged = {"spec": {"podSelector": {}, "ingress": [{"ports": [{"port": 10002, "endPort": 19999}]}]}}
    assert kv.policy_admits(ranged, "ns", target, _pod("ns"), 12345)
    assert not kv.policy_admits(ranged, "ns", target, _pod("ns"), 20000)
    udp = {"spec": {"podSelector": {}, "ingress": [{"ports": [{"port": 53, "protocol": "UDP"}]}]}}
    assert not kv.policy_admits(udp, "ns", target, _pod("ns"), 53)
    expr = {
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["a"]},
            {"key": "gone", "operator": "DoesNotExist"},
        ]
    }
    assert kv.selector_matches(expr, {"tier": "a"}) and not kv.selector_matches(expr, {"tier": "a", "gone": "1"})


# --- the image: Dockerfile and .dockerignore ---------------------------------------------------------------
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in _instructions(DOCKERFILE.read_text()):
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def _ignore_regex(pattern: str) -> re.Pattern:
    out = ""
    parts = pattern.strip("/").split("/")
    for i, part in enumerate(parts):
        if part == "**":
            out += "(?:.*/)?" if i < len(parts) - 1 else ".*"
            continue
        out += "".join("[^/]*" if ch == "*" else "[^/]" if ch == "?" else re.escape(ch) for ch in part)
        out += "/" if i < len(parts) - 1 else ""
    return re.compile(out + "$")


def docker_context(root: Path, dockerignore: Path) -> set[str]:
    """The files `docker build` sends as context: .dockerignore patterns in order, the last match wins,
    a pattern that matches a folder matches everything in it, `!` re-includes."""
    rules = []
    for line in dockerignore.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            negate = line.startswith("!")
            rules.append((negate, _ignore_regex(line.lstrip("!"))))
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=root, capture_output=True, text=True, check=True
    ).stdout.split()
    kept = set()
    for path in listed:
        prefixes = ["/".join(path.split("/")[:i]) for i in range(1, path.count("/") + 2)]
        excluded = False
        for negate, regex in rules:
            if any(regex.match(p) for p in prefixes):
                excluded = not negate
        if not excluded and (root / path).is_file():
            kept.add(path)
    return kept


def test_image_runs_as_the_non_root_ray_user():
    final = _stages()[-1]
    users = [args for word, args in final if word == "USER"]
    assert users and users[-1].split(":")[0] == "1000", "the final stage ends as `ray` (uid 1000), by number"


def test_build_context_is_only_the_installable_project():
    context = docker_context(REPO, DOCKERIGNORE)
    assert context, "nothing reaches the build context"
    top = {p.split("/")[0] for p in context}
    assert top <= {"pyproject.toml", "README.md", "orchestrator", "cluster", "schedules"}, top
    for word, args in (i for stage in _stages() for i in stage):
        if word in ("COPY", "ADD") and "--from=" not in args:
            sources = [a for a in args.split() if not a.startswith("--")][:-1]
            assert "." not in sources and "./" not in sources, f"{word} {args}: copies the whole context"


def test_image_installs_every_module_from_its_build_context(tmp_path):
    """Builds the project wheel the way the Dockerfile's first stage does, from the files .dockerignore lets
    through and the COPY lines copy, and checks it holds every module of the packages pyproject.toml names."""
    context = docker_context(REPO, DOCKERIGNORE)
    (stage, *_) = [s for s in _stages() if any(w == "RUN" and "pip wheel" in a for w, a in s)]
    src = tmp_path / "src"
    src.mkdir()
    for word, args in stage:
        if word == "COPY":
            *sources, dest = [a for a in args.split() if not a.startswith("--")]
            for source in sources:
                base = source.rstrip("/")
                for path in sorted(p for p in context if p == base or p.startswith(base + "/")):
                    target = src / dest / (Path(path).name if path == base else path[len(base) + 1 :])
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(REPO / path, target)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            "-q",
            "--wheel-dir",
            str(tmp_path / "wheels"),
            str(src),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    (wheel,) = (tmp_path / "wheels").glob("*.whl")
    built = {n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".py")}
    expected = {
        p
        for p in subprocess.run(
            ["git", "ls-files", "orchestrator", "cluster", "schedules"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        if p.endswith(".py")
    }
    assert expected and expected <= built, sorted(expected - built)


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
    (
        "typo-workerGroupSpec",
        "RayCluster",
        _rename(["spec", "workerGroupSpecs"], "workerGroupSpec"),
        "'workerGroupSpec' was unexpected",
    ),
    ("replicas-wrong-type", "RayCluster", _set(W + ["replicas"], "two"), "is not of type 'integer'"),
    ("maxReplicas-overflows-int32", "RayCluster", _set(W + ["maxReplicas"], 2**31), "int32"),
    ("missing-groupName", "RayCluster", _delete(W + ["groupName"]), "'groupName' is a required property"),
    (
        "missing-headGroupSpec",
        "RayCluster",
        _delete(["spec", "headGroupSpec"]),
        "'headGroupSpec' is a required property",
    ),
    ("missing-container-name", "RayCluster", _delete(HEAD_C + ["name"]), "'name' is a required property"),
    (
        "min-greater-than-max",
        "RayCluster",
        lambda o: _worker(o).update(minReplicas=5, maxReplicas=1, replicas=1),
        "minReplicas (5) > maxReplicas (1)",
    ),
    ("image-latest", "RayCluster", _set(HEAD_C + ["image"], "rayproject/ray:latest"), "pin a version"),
    (
        "image-untagged",
        "RayCluster",
        _set(W + ["template", "spec", "containers", 0, "image"], "rayproject/ray"),
        "pin a version",
    ),
    ("authOptions-mode-missing", "RayCluster", _delete(["spec", "authOptions", "mode"]), "authOptions.mode"),
    (
        "authOptions-mode-bogus",
        "RayCluster",
        _set(["spec", "authOptions", "mode"], "password"),
        "is not one of ['disabled', 'token']",
    ),
    ("token-needs-ray-2.52", "RayCluster", _set(["spec", "rayVersion"], "2.51.0"), ">= 2.52.0"),
    (
        "head-LoadBalancer",
        "RayCluster",
        _set(["spec", "headGroupSpec", "serviceType"], "LoadBalancer"),
        "expected ClusterIP",
    ),
    (
        "no-gpu-limit",
        "RayCluster",
        _delete(W + ["template", "spec", "containers", 0, "resources", "limits", "nvidia.com/gpu"]),
        "GPU worker group",
    ),
    (
        "unknown-field-in-pod-template",
        "RayCluster",
        _set(HEAD_C + ["imagePullPolicyy"], "Always"),
        "'imagePullPolicyy' was unexpected",
    ),
    ("unknown-field-in-metadata", "RayCluster", _rename(["metadata", "labels"], "lables"), "'lables' was unexpected"),
    ("cluster-name-too-long", "RayCluster", _set(["metadata", "name"], "s" * 54), "at most 53"),
    ("job-name-too-long", "RayJob", _set(["metadata", "name"], "sweep-" + "x" * 42), "at most 47"),
    ("job-name-not-dns", "RayJob", _set(["metadata", "name"], "Sweep_Digits"), "DNS-1035"),
    (
        "job-typo-in-cluster-spec",
        "RayJob",
        _rename(["spec", "rayClusterSpec", "workerGroupSpecs"], "workerGroupSpec"),
        "'workerGroupSpec' was unexpected",
    ),
    (
        "job-shutdown-wrong-type",
        "RayJob",
        _set(["spec", "shutdownAfterJobFinishes"], "yes"),
        "is not of type 'boolean'",
    ),
    (
        "job-ttl-without-shutdown",
        "RayJob",
        _set(["spec", "shutdownAfterJobFinishes"], False),
        "needs shutdownAfterJobFinishes",
    ),
    ("job-min-greater-than-max", "RayJob", _set(JOB_W + ["minReplicas"], 9), "minReplicas (9) > maxReplicas"),
    (
        "job-auth-off",
        "RayJob",
        _set(["spec", "rayClusterSpec", "authOptions"], {"mode": "disabled"}),
        "expected 'token'",
    ),
    ("job-no-cluster", "RayJob", _delete(["spec", "rayClusterSpec"]), "rayClusterSpec or clusterSelector"),
    ("runs-as-root", "RayCluster", _set(HEAD_C + ["securityContext", "runAsUser"], 0), "runAsUser"),
    (
        "pod-not-non-root",
        "RayCluster",
        _delete(["spec", "headGroupSpec", "template", "spec", "securityContext", "runAsNonRoot"]),
        "runAsNonRoot: expected true",
    ),
    (
        "privilege-escalation",
        "RayCluster",
        _set(W + ["template", "spec", "containers", 0, "securityContext", "allowPrivilegeEscalation"], True),
        "allowPrivilegeEscalation",
    ),
    (
        "capability-added",
        "RayCluster",
        _set(HEAD_C + ["securityContext", "capabilities", "add"], ["NET_ADMIN"]),
        "capabilities.add",
    ),
    (
        "writable-root",
        "RayCluster",
        _set(HEAD_C + ["securityContext", "readOnlyRootFilesystem"], False),
        "readOnlyRootFilesystem",
    ),
    ("no-writable-tmp", "RayCluster", lambda o: _head_container(o)["volumeMounts"].pop(0), "/tmp"),
    ("home-cache", "RayCluster", lambda o: _head_container(o)["env"].pop(0), "XDG_CACHE_HOME"),
    (
        "seccomp-unconfined",
        "RayCluster",
        _set(HEAD_C + ["securityContext", "seccompProfile"], {"type": "Unconfined"}),
        "seccompProfile",
    ),
    (
        "api-token-mounted",
        "RayCluster",
        _delete(W + ["template", "spec", "automountServiceAccountToken"]),
        "automountServiceAccountToken",
    ),
    (
        "autoscaler-without-token",
        "RayCluster",
        lambda o: o["spec"]["autoscalerOptions"]["volumeMounts"].pop(),
        "autoscaler needs a projected serviceAccountToken",
    ),
    (
        "autoscaler-escalates",
        "RayCluster",
        _set(["spec", "autoscalerOptions", "securityContext", "allowPrivilegeEscalation"], True),
        "allowPrivilegeEscalation",
    ),
    ("job-default-submitter", "RayJob", _delete(["spec", "submitterPodTemplate"]), "submitterPodTemplate"),
    (
        "job-submitter-root",
        "RayJob",
        _set(["spec", "submitterPodTemplate", "spec", "securityContext", "runAsUser"], 0),
        "runAsUser",
    ),
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
            "preserved": {
                "type": "object",
                "properties": {"a": {"type": "integer"}},
                "x-kubernetes-preserve-unknown-fields": True,
            },
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
    obj = {
        "spec": {
            "a": [
                {
                    "template": {
                        "spec": {
                            "containers": [
                                {"name": "x", "image": "rayproject/ray:1.0"},
                                {"name": "y", "image": "busybox:1"},
                            ]
                        }
                    }
                }
            ]
        }
    }
    (out,) = kv.kustomize_images([obj], [{"name": "rayproject/ray", "newName": "reg/img", "newTag": "2"}])
    images = [c["image"] for _, c in kv.iter_containers(out)]
    assert images == ["reg/img:2", "busybox:1"]
    assert obj["spec"]["a"][0]["template"]["spec"]["containers"][0]["image"] == "rayproject/ray:1.0"
