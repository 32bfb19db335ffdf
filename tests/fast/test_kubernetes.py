"""deploy/kubernetes, rendered by kustomize offline and validated against the Kubernetes schemas
(kubernetes-validate ships them) and KEDA's ScaledObject CRD (tests/fast/schemas/): what it runs is what
the service is, and KEDA reads the keys the service keeps."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from jsonschema import Draft202012Validator

from jobs import keys
from jobs import records as rec
from settings import Settings
from stack.processes import PREDICT_QUEUES

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "kubernetes"
KEDA_CRD = Path(__file__).resolve().parent / "schemas" / "keda.sh_scaledobjects.yaml"
KUBERNETES_VERSION = "1.32.0"  # the oldest the manifests are checked against (kubectl's here)
VARIANTS = ["", "sentinel", "managed-redis"]  # deploy/kubernetes itself, and its two other Redis setups
# Variables the manifests set that the service does not read: KEDA's triggers read these.
FOR_KEDA = {"REDIS_ADDRESS", "REDIS_SENTINELS", "REDIS_SENTINEL_PRIMARY", "REDIS_PASSWORD"}
# ... and libraries read these.
FOR_LIBRARIES = {"KERAS_HOME"}
# The parameters of KEDA's redis and redis-sentinel triggers (KEDA 2.20's pkg/scalers/redis_scaler.go):
# anything else in a trigger's metadata is a typo KEDA would reject only once deployed.
REDIS_TRIGGER_PARAMETERS = {
    "address", "addressFromEnv", "addresses", "addressesFromEnv", "host", "hostFromEnv", "port", "portFromEnv",
    "usernameFromEnv", "passwordFromEnv", "sentinelUsernameFromEnv", "sentinelPasswordFromEnv", "sentinelMaster",
    "sentinelMasterFromEnv", "listName", "listLength", "activationListLength", "databaseIndex", "enableTLS",
    "unsafeSsl",
}  # fmt: skip


def kubectl() -> str:
    found = shutil.which("kubectl")
    if found:
        return found
    # Debian has no kubectl recent enough (its kubernetes-client is 1.20, whose kustomize predates
    # these files): it comes with the machine. Missing in CI, the manifests would go unchecked: fail.
    why = "kubectl (1.27 or later, for its kustomize 5) is not installed: deploy/kubernetes cannot be rendered"
    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, list[dict]]:
    """Every variant rendered as `kubectl kustomize` would, with made-up secrets (a copy: base/secrets.env
    is never written in the checkout)."""
    command = kubectl()
    tree = tmp_path_factory.mktemp("deploy") / "kubernetes"
    shutil.copytree(DEPLOY, tree, ignore=shutil.ignore_patterns("secrets.env"))
    (tree / "base" / "secrets.env").write_text("DIGITS_ADMIN_TOKEN=test-admin-token\nSECRET_KEY=test-secret-key\n")
    variants = {}
    for variant in VARIANTS:
        out = subprocess.run([command, "kustomize", str(tree / variant)], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        variants[variant] = [doc for doc in yaml.safe_load_all(out.stdout) if doc]
    return variants


def of_kind(docs: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def strict(schema: object) -> object:
    """The CRD's schema refusing fields it does not define, as `kubectl apply` (strict field
    validation) does; maps (``additionalProperties`` given) and free-form parts stay open."""
    if isinstance(schema, dict):
        schema = {key: strict(value) for key, value in schema.items()}
        open_ended = "additionalProperties" in schema or schema.get("x-kubernetes-preserve-unknown-fields")
        if "properties" in schema and not open_ended:
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [strict(item) for item in schema]
    return schema


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_manifest_validates(rendered, variant):
    crd = next(doc for doc in yaml.safe_load_all(KEDA_CRD.read_text()) if doc)
    (served,) = [v for v in crd["spec"]["versions"] if v["served"]]
    scaled_object = Draft202012Validator(strict(served["schema"]["openAPIV3Schema"]))
    kinds = set()
    for doc in rendered[variant]:
        kinds.add(doc["kind"])
        if doc["apiVersion"] == f"{crd['spec']['group']}/{served['name']}":
            errors = [f"{list(e.absolute_path)}: {e.message}" for e in scaled_object.iter_errors(doc)]
            assert not errors, errors
        else:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    assert {"Deployment", "Service", "ScaledObject", "ConfigMap", "Secret"} <= kinds
    assert ("StatefulSet" in kinds) is (variant == ""), "the reference Redis only where nothing else is named"


@pytest.mark.parametrize("variant", VARIANTS)
def test_keda_reads_the_lanes_and_the_jobs_in_hand_by_the_keys_the_service_keeps(rendered, variant):
    (scaled,) = of_kind(rendered[variant], "ScaledObject")
    (worker,) = of_kind(rendered[variant], "Deployment", scaled["spec"]["scaleTargetRef"]["name"])
    assert worker["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "predict-worker"
    triggers = scaled["spec"]["triggers"]
    assert {t["type"] for t in triggers} == {"redis-sentinel" if variant == "sentinel" else "redis"}
    read = [t["metadata"]["listName"] for t in triggers]
    assert sorted(read) == sorted([keys.lane(lane) for lane in keys.PREDICT_QUEUES] + [keys.RUNNING_JOBS])
    for trigger in triggers:
        metadata = trigger["metadata"]
        assert set(metadata) <= REDIS_TRIGGER_PARAMETERS, set(metadata) - REDIS_TRIGGER_PARAMETERS
        assert int(metadata["listLength"]) > 0 and int(metadata["activationListLength"]) >= 0
        assert metadata["databaseIndex"] == "0"  # REDIS_URL's database in every variant
    spec = scaled["spec"]
    assert 1 <= spec["minReplicaCount"] < spec["maxReplicaCount"] and spec["cooldownPeriod"] > 0
    assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"]


def test_the_keys_keda_reads_are_of_types_its_redis_scaler_counts(redis_client):
    """KEDA's redis scaler counts a list with LLEN and a sorted set with ZCARD: the lanes must be
    lists holding every waiting id, the jobs in hand a sorted set holding every started one."""
    records = rec.JobRecords(redis_client)
    lanes = rec.Lanes(keys.PREDICT_QUEUE, keys.BULK_QUEUE, fast_pending=2)
    records.create("predict", 2, client="a", images=[b"x", b"y"], lanes=lanes)
    records.create("predict", 3, client="a", images=[b"x"] * 3, lanes=lanes)  # a backlog: the bulk lane
    assert [redis_client.type(keys.lane(lane)) for lane in keys.PREDICT_QUEUES] == [b"list", b"list"]
    assert [redis_client.llen(keys.lane(lane)) for lane in keys.PREDICT_QUEUES] == [2, 3]
    taken = [i.decode() for i in redis_client.lpop(keys.lane(keys.BULK_QUEUE), 3)]
    records.start(taken, "worker-1")
    assert redis_client.type(keys.RUNNING_JOBS) == b"zset" and redis_client.zcard(keys.RUNNING_JOBS) == 3


def container(deployment: dict) -> dict:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def test_predict_workers_run_as_the_service_expects_and_have_time_to_finish_a_batch(rendered):
    docs = rendered[""]
    (worker,) = of_kind(docs, "Deployment", "predict-worker")
    command = container(worker)["command"]
    assert command[:4] == ["celery", "-A", "worker", "worker"]
    assert command[command.index("--queues") + 1] == PREDICT_QUEUES and command[command.index("--pool") + 1] == "solo"
    budget_s = float(settings_given(docs).get("PREDICT_BATCH_BUDGET_MS", Settings().predict_batch_budget_ms)) / 1000
    # The worker itself waits two batch budgets and 5 s for the batch in hand (worker/process.py).
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 2 * budget_s + 5
    resources = container(worker)["resources"]
    assert resources["requests"]["cpu"] and resources["limits"]["memory"]
    (trainer,) = of_kind(docs, "Deployment", "trainer")
    assert container(trainer)["command"][container(trainer)["command"].index("--queues") + 1] == keys.TRAIN_QUEUE


def test_the_web_drains_before_it_stops_and_is_probed_where_the_service_answers(rendered, redis_client):
    (web,) = of_kind(rendered[""], "Deployment", "web")
    main = container(web)
    assert main["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert main["livenessProbe"]["httpGet"]["path"] == "/healthz"
    from web import create_app

    url = redis_client.connection_pool.connection_kwargs
    routes = {
        rule.rule for rule in create_app({"REDIS_URL": f"redis://127.0.0.1:{url['port']}/1"}).url_map.iter_rules()
    }
    assert {"/readyz", "/healthz"} <= routes
    # SIGTERM drains (web/draining.py) within gunicorn's graceful_timeout, from stack/gunicorn_conf.py
    assert "--graceful-timeout" not in main["command"] and "python:stack.gunicorn_conf" in main["command"]
    drain_s = float(settings_given(rendered[""]).get("DRAIN_SECONDS", Settings().drain_seconds))
    graceful = Settings(drain_seconds=drain_s).web_graceful_timeout
    # and the master's own exit (a few seconds) before SIGKILL
    assert web["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= graceful + 5
    (service,) = of_kind(rendered[""], "Service", "web")
    assert service["spec"]["selector"] == web["spec"]["selector"]["matchLabels"]


def test_the_grpc_server_drains_before_it_stops_and_is_probed_by_its_health_service(rendered):
    from web import grpc_health, grpc_server

    (server,) = of_kind(rendered[""], "Deployment", "grpc")
    main = container(server)
    assert main["command"][:3] == ["python", "-m", "web.grpc_server"]
    (port,) = main["ports"]
    assert main["command"][main["command"].index("--port") + 1] == str(port["containerPort"])
    assert port["containerPort"] == Settings().grpc_port
    # The kubelet's own grpc probes: readiness asks the server as a whole, liveness what no outage turns off.
    ready, live = main["readinessProbe"]["grpc"], main["livenessProbe"]["grpc"]
    assert ready["port"] == live["port"] == port["containerPort"]
    assert ready.get("service", "") in grpc_health.READINESS and live["service"] == grpc_health.LIVENESS
    # SIGTERM drains for DRAIN_SECONDS, then the calls in hand get GRACE_S, and the process its exit
    drain_s = float(settings_given(rendered[""]).get("DRAIN_SECONDS", Settings().drain_seconds))
    assert server["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= drain_s + grpc_server.GRACE_S + 5
    (web,) = of_kind(rendered[""], "Deployment", "web")
    pod, web_pod = server["spec"]["template"]["spec"], web["spec"]["template"]["spec"]
    assert pod["securityContext"] == web_pod["securityContext"]
    assert main["securityContext"] == container(web)["securityContext"] and main["envFrom"] == container(web)["envFrom"]
    (service,) = of_kind(rendered[""], "Service", "grpc")
    assert service["spec"]["selector"] == server["spec"]["selector"]["matchLabels"]
    (exposed,) = service["spec"]["ports"]
    assert exposed["appProtocol"] == "grpc" and exposed["port"] == port["containerPort"]
    assert exposed["targetPort"] == port["name"]


def settings_given(docs: list[dict]) -> dict[str, str]:
    (config,) = of_kind(docs, "ConfigMap")
    return config["data"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variable_set_is_a_setting_of_the_service_or_for_keda(rendered, variant):
    docs = rendered[variant]
    names = set(settings_given(docs))
    (secret,) = of_kind(docs, "Secret")
    names |= set(secret["data"])
    for deployment in of_kind(docs, "Deployment"):
        names |= {env["name"] for env in container(deployment).get("env", [])}
    unknown = names - set(Settings.variables()) - FOR_KEDA - FOR_LIBRARIES
    assert not unknown, f"not settings of the service (settings.py): {unknown}"
    for deployment in of_kind(docs, "Deployment"):
        sources = [next(iter(source.values()))["name"] for source in container(deployment)["envFrom"]]
        assert sources == [of_kind(docs, "ConfigMap")[0]["metadata"]["name"], secret["metadata"]["name"]]


def test_the_reference_redis_keeps_its_data_and_refuses_writes_rather_than_evict(rendered):
    (redis_set,) = of_kind(rendered[""], "StatefulSet", "redis")
    args = container(redis_set)["args"]
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction" and "--maxmemory" in args
    assert args[args.index("--appendonly") + 1] == "yes"
    (claim,) = redis_set["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container(redis_set)["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == args[args.index("--dir") + 1]
    assert settings_given(rendered[""])["REDIS_URL"].startswith("redis://redis:")


def test_no_secret_is_committed_and_none_is_made_up(tmp_path):
    example = (DEPLOY / "base" / "secrets.env.example").read_text().splitlines()
    given = [line for line in example if line and not line.startswith("#")]
    assert given and all(line.endswith("=") for line in given), "the example names the secrets, no values"
    ignored = subprocess.run(["git", "check-ignore", "-q", str(DEPLOY / "base" / "secrets.env")], cwd=ROOT)
    assert ignored.returncode == 0, "base/secrets.env must be ignored by git"
    tree = tmp_path / "kubernetes"
    shutil.copytree(DEPLOY, tree, ignore=shutil.ignore_patterns("secrets.env"))
    out = subprocess.run([kubectl(), "kustomize", str(tree)], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "secrets.env" in out.stderr, "without secrets.env nothing is rendered"
