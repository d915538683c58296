"""The Grafana dashboard, the Prometheus configuration and the ServiceMonitors: valid offline, and
every panel's PromQL answered by a real Prometheus (Debian's) that scrapes the node agent, the
training processes (through a Pushgateway) and the batch size optimizer server while recurrences of
a job run on replay GPUs, with the values the test knows: energy per job equal to what the job's
monitor measured, limits equal to those applied, batch sizes and costs equal to the server's trials.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.observability.stack import (
    INTERVAL_S,
    JOB_ID,
    PROFILE,
    Stack,
    missing_binaries,
    stack,
)
from zeus.device.replay import load_profile

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy/grafana/zeus-dashboard.json"
BUILTINS = {"__range", "__rate_interval", "__interval"}
PANEL_KINDS = {"timeseries", "bargauge", "stat"}


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def targets() -> list[tuple[str, str, str]]:
    """(panel title, refId, expr) of every query of the dashboard."""
    return [
        (panel["title"], target["refId"], target["expr"])
        for panel in dashboard()["panels"]
        for target in panel["targets"]
    ]


def substitute(expr: str, range_s: int) -> str:
    """The query Grafana sends with every node and the test's job selected."""
    return (
        expr.replace("$__range", f"{range_s}s")
        .replace("$instance", ".*")
        .replace("$job_id", JOB_ID)  # no regex metacharacters in it
    )


# -- offline ----------------------------------------------------------------------------------------


def test_dashboard_is_importable() -> None:
    board = dashboard()
    assert board["uid"] == "zeus-energy" and board["title"] and board["schemaVersion"] >= 36
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(set(ids)) == len(ids)
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        assert panel["type"] in PANEL_KINDS, panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        columns, rows = (
            range(grid["x"], grid["x"] + grid["w"]),
            range(grid["y"], grid["y"] + grid["h"]),
        )
        mine = {(x, y) for x in columns for y in rows}
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(set(refs)) == len(refs)
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"] and target["expr"].strip()
            used = set(re.findall(r"\$(\w+)", target["expr"]))
            assert used <= set(variables) | BUILTINS, used
        assert panel["description"]


def test_example_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian's prometheus package ships it)")
    config = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    for job in config["scrape_configs"]:
        if "authorization" in job:  # promtool checks that the file exists
            token = tmp_path / "token"
            token.write_text("t")
            job["authorization"]["credentials_file"] = str(token)
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [promtool, "check", "config", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    bad = tmp_path / "bad.yml"
    bad.write_text(path.read_text().replace("scrape_interval", "scrape_intervall"))
    refused = subprocess.run([promtool, "check", "config", str(bad)], capture_output=True)
    assert refused.returncode != 0


SERVICEMONITOR_SCHEMA = json.loads(
    (REPO / "deploy/k8s/prometheus-operator/servicemonitor-schema.json").read_text()
)


def _servicemonitors() -> list[dict[str, Any]]:
    path = REPO / "deploy/k8s/prometheus-operator/servicemonitors.yaml"
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _k8s(kind: str) -> list[dict[str, Any]]:
    docs = [
        d for p in (REPO / "deploy/k8s").glob("*.yaml") for d in yaml.safe_load_all(p.read_text())
    ]
    return [d for d in docs if d and d["kind"] == kind]


def test_servicemonitors_are_valid_and_find_their_services() -> None:
    monitors = _servicemonitors()
    assert {m["metadata"]["name"] for m in monitors} == {"zeus-agent", "zeus-bso"}
    services = _k8s("Service")
    for monitor in monitors:
        jsonschema.validate(monitor, SERVICEMONITOR_SCHEMA)
        meta_only = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": monitor["metadata"]}
        kubernetes_validate.validate(meta_only, "1.30", strict=True)  # metadata is ObjectMeta
        wanted = monitor["spec"]["selector"]["matchLabels"].items()
        namespaces = monitor["spec"]["namespaceSelector"]["matchNames"]
        (service,) = [
            s
            for s in services
            if wanted <= s["metadata"]["labels"].items()
            and s["metadata"]["namespace"] in namespaces
        ]
        port_names = {p["name"] for p in service["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint["port"] in port_names and endpoint["path"] == "/metrics"
            credentials = endpoint.get("authorization", {}).get("credentials")
            if credentials is not None:  # the server's token, from its Secret
                (secret,) = [
                    s for s in _k8s("Secret") if s["metadata"]["name"] == credentials["name"]
                ]
                assert credentials["key"] in secret["stringData"]
    bad = json.loads(json.dumps(monitors[0]))
    bad["spec"]["endpoints"][0]["intervall"] = "15s"
    assert not jsonschema.Draft202012Validator(SERVICEMONITOR_SCHEMA).is_valid(bad)


def test_the_agent_serves_metrics_where_its_service_looks() -> None:
    from zeus.agent.settings import AgentSettings

    (daemonset,) = _k8s("DaemonSet")
    (container,) = daemonset["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    settings = AgentSettings.from_env(env)
    assert settings.metrics_port is not None and settings.metrics_host == "0.0.0.0"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == settings.metrics_port
    (service,) = [s for s in _k8s("Service") if s["metadata"]["name"] == "zeus-agent-metrics"]
    assert service["spec"]["clusterIP"] == "None"
    pod_labels = daemonset["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"


# -- against a real Prometheus ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    missing = missing_binaries()
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (scripts/install-services.sh)")
    folder = Path(__import__("tempfile").mkdtemp(prefix="zeus-obs-", dir="/tmp"))
    try:
        with stack(folder) as started:
            for _ in range(3):
                started.run_recurrence()
            time.sleep(2.5 * INTERVAL_S)  # range queries, whose steps fall between scrapes, too
            yield started
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _values(result: list[dict[str, Any]]) -> list[float]:
    return [float(v) for series in result for _, v in series["values"]]


def _instant(run: Stack, title: str, ref: str = "A") -> dict[tuple[tuple[str, str], ...], float]:
    (expr,) = [e for t, r, e in targets() if t == title and r == ref]
    range_s = int(time.time() - run.started_at) + 5
    return {
        tuple(sorted(s["metric"].items())): float(s["value"][1])
        for s in run.prometheus.query(substitute(expr, range_s))
    }


def _range(run: Stack, title: str, ref: str = "A") -> list[dict[str, Any]]:
    (expr,) = [e for t, r, e in targets() if t == title and r == ref]
    return run.prometheus.query_range(substitute(expr, 60), run.started_at, time.time(), 0.5)


@pytest.mark.slow
def test_every_panel_answers_what_the_run_did(run: Stack) -> None:
    trials = run.trials()
    assert [t["trial_number"] for t in trials] == [1, 2, 3]
    assert all(t["status"] != "running" for t in trials)
    energies = [t["energy"] for t in trials]
    profile = load_profile(PROFILE)
    audit = run.audit()
    answered = set()

    def check(title: str, ref: str = "A") -> None:
        answered.add((title, ref))

    # Energy per job: the agent's leases drew exactly what the job's monitor measured and reported.
    (per_job,) = _instant(run, "Energy per job").items()
    assert per_job[0] == (("job_id", JOB_ID),)
    assert per_job[1] == pytest.approx(sum(energies), rel=1e-9)
    assert [r["energy_j"] for r in run.recurrences] == pytest.approx(energies, rel=1e-12)
    check("Energy per job")
    (gpu_energy,) = _instant(run, "GPU energy in the time range").values()
    assert gpu_energy == pytest.approx(sum(energies), rel=1e-9)  # nothing else ran on the GPU
    check("GPU energy in the time range")

    # Limits: the default, and every limit a recurrence chose and held; changes as audited.
    limits = set(_values(_range(run, "GPU power limit")))
    chosen = {r["power_limit_w"] for r in run.recurrences}
    assert None not in chosen and chosen | {300.0} == limits  # every recurrence chose one
    assert set(_values(_range(run, "GPU power limit", "B"))) == {300.0}
    check("GPU power limit")
    check("GPU power limit", "B")
    changes = {
        dict(k)["event"]: v
        for k, v in _instant(run, "Power limit changes in the time range").items()
    }
    audited = {e: sum(1 for a in audit if a["event"] == e) for e in ("set", "reset", "restore")}
    assert changes == {e: float(n) for e, n in audited.items()} and audited["set"] > 0
    check("Power limit changes in the time range")

    # Power: the profile's figure at each (batch size, limit) the GPU ran at, ending at the default.
    power = _values(_range(run, "GPU power"))
    last_bs = run.recurrences[-1]["last_step_batch_size"]
    assert power[-1] == pytest.approx(profile.at(last_bs, 300, 0).power_w, rel=1e-12)
    for result in run.recurrences:
        if result["power_limit_w"] is not None:
            at = (result["last_step_batch_size"], result["power_limit_w"], 0)
            assert any(p == pytest.approx(profile.at(*at).power_w, rel=1e-12) for p in power)
    check("GPU power")
    holders = _range(run, "Which job holds each GPU")
    assert {s["metric"]["job_id"] for s in holders} == {JOB_ID}
    assert len({s["metric"]["lease"] for s in holders}) == 3  # one lease per recurrence
    assert set(_values(holders)) == {1.0}
    check("Which job holds each GPU")

    # The training processes' windows, pushed at exit: the last recurrence's trial energy.
    windows = {
        dict(k)["window"]: v
        for k, v in _instant(run, "Measurement windows of training processes").items()
    }
    assert windows["zeus.bso.trial"] == pytest.approx(energies[-1], rel=1e-9)  # the BSO's window
    assert "__GlobalPowerLimitOptimizer" in windows
    check("Measurement windows of training processes")

    # The server: one batch size and cost per recurrence, the best, and the energy saved.
    assert set(_values(_range(run, "Batch size per recurrence"))) == {
        float(t["batch_size"]) for t in trials
    }
    check("Batch size per recurrence")
    costs = sorted(set(_values(_range(run, "Cost per recurrence"))))
    assert costs == pytest.approx(sorted({t["cost"] for t in trials}), rel=1e-12)
    check("Cost per recurrence")
    converged = [t for t in trials if t["converged"]]
    (lowest,) = _instant(run, "Cost per recurrence", "B").values()
    assert lowest == min(t["cost"] for t in converged)
    check("Cost per recurrence", "B")
    at_default = [t["energy"] for t in converged if t["batch_size"] == 128]
    default_j = sum(at_default) / len(at_default)
    saved_j = len(converged) * default_j - sum(energies)
    (saved,) = _instant(run, "Energy saved against the default batch size").values()
    assert saved == pytest.approx(saved_j, rel=1e-9)
    check("Energy saved against the default batch size")
    (percent,) = _instant(run, "Energy saved (%)").values()
    assert percent == pytest.approx(100 * saved_j / (len(converged) * default_j), rel=1e-9)
    check("Energy saved (%)")

    assert answered == {(t, r) for t, r, _ in targets()}  # every query of the dashboard checked


@pytest.mark.slow
def test_the_dashboards_variables_list_the_node_and_the_job(run: Stack) -> None:
    assert len(run.prometheus.label_values("instance", "zeus_agent_gpu_info")) == 1
    match = '{__name__=~"zeus_agent_lease_energy_joules_total|zeus_window_energy_joules_total|zeus_bso_job_converged_trials"}'
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert match in variables["job_id"]["definition"]
    assert run.prometheus.label_values("job_id", match) == [JOB_ID]
