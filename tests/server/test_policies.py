"""Each job's batch-size policy: named in its spec or the server's default, its parameters, its stored
state (decoded, refused clearly when unreadable, reset to a fresh one of its own policy)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from tests.server.conftest import job_spec
from tests.server.test_api import predict, register, report
from zeus.cli import app as cli
from zeus.errors import ZeusConfigError
from zeus.policy import local_search_ts, pruning_gts
from zeus.server import ServerSettings

HOSTED = "local-search-ts, pruning-gts"


def _sql(database_url: str, statement: str, **params: Any) -> Any:
    engine = create_engine(database_url)
    with engine.begin() as conn:
        result = conn.execute(text(statement), params)
        value = result.scalar() if result.returns_rows else None
    engine.dispose()
    return value


def _stored_state(database_url: str, job_id: str) -> dict[str, Any]:
    raw = _sql(database_url, "SELECT policy_state_json FROM bso_jobs WHERE job_id = :j", j=job_id)
    state: dict[str, Any] = json.loads(raw)
    return state


def _refusal(response: Any, status: int, field: str | None = None) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    if field is not None:
        assert body["detail"][0]["loc"] == ["body", field]
    message: str = body["message"]
    return message


def test_a_job_names_its_policy_or_gets_the_servers_default(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client()
    searching = register(client, job_id="test-default")
    assert searching["policy"] == "local-search-ts"
    paper = register(client, job_id="test-paper", policy="pruning_gts")  # the old spelling
    assert paper["policy"] == "pruning-gts"
    listed = {j["job_id"]: (j["policy"], j["stage"]) for j in client.get("/jobs").json()}
    assert listed == {
        "test-default": ("local-search-ts", "search"),
        "test-paper": ("pruning-gts", "pruning"),
    }
    assert client.get("/jobs/test-paper").json()["spec"]["policy"] == "pruning-gts"

    # A server restarted with another default keeps each job's policy; new jobs get the new one.
    client = make_client(default_policy="pruning-gts")
    assert register(client, job_id="test-later")["policy"] == "pruning-gts"
    again = client.post("/jobs", json=job_spec(job_id="test-default"))  # no policy: the same job
    assert again.status_code == 200 and again.json()["policy"] == "local-search-ts"
    named = client.post("/jobs", json=job_spec(job_id="test-default", policy="local_search_ts"))
    assert named.status_code == 200
    other = client.post("/jobs", json=job_spec(job_id="test-default", policy="pruning-gts"))
    message = _refusal(other, 409)
    assert "policy local-search-ts, not pruning-gts" in message


@pytest.mark.parametrize(
    ("policy", "status", "says"),
    [
        ("bandit", 422, f"unknown policy 'bandit'; the server hosts {HOSTED}"),
        ("grid-search", 422, f"baseline without a per-job state; the server hosts {HOSTED}"),
        ("default", 422, "baseline"),
        ("zeus.policy:PruningGTSBatchSizeOptimizer", 422, "never a class named by a job"),
        ("os:system", 422, "never a class named by a job"),
    ],
)
def test_policies_the_server_does_not_host_are_refused(
    client: TestClient, policy: str, status: int, says: str
) -> None:
    response = client.post("/jobs", json=job_spec(policy=policy))
    assert says in _refusal(response, status, "policy")
    assert client.get("/jobs").json() == []  # nothing registered


def test_policy_names_are_bounded_text(client: TestClient) -> None:
    for bad in ("x" * 65, "", " pruning-gts", "pruning\x00gts"):
        response = client.post("/jobs", json=job_spec(policy=bad))
        assert response.status_code == 422, bad
        assert response.json()["detail"][0]["loc"] == ["body", "policy"]


def test_parameters_apply_to_their_policy_only(make_client: Callable[..., TestClient]) -> None:
    client = make_client()
    foreign = client.post("/jobs", json=job_spec(policy="local-search-ts", num_pruning_rounds=3))
    message = _refusal(foreign, 422, "num_pruning_rounds")
    assert "does not apply to policy local-search-ts; it is a parameter of pruning-gts" in message
    assert "local-search-ts: window_size, explore_tolerance, prior_cv" in message
    foreign = client.post("/jobs", json=job_spec(policy="pruning-gts", explore_tolerance=0.3))
    assert "of local-search-ts" in _refusal(foreign, 422, "explore_tolerance")
    both = client.post("/jobs", json=job_spec(mab_prior_mean=-5.0, prior_cv=0.2))
    assert "no policy takes all of mab_prior_mean, prior_cv" in _refusal(both, 422, "policy")
    assert client.get("/jobs").json() == []
    # Set to their defaults (as the original client always sends them), they are no one's.
    assert register(client, policy="local-search-ts", num_pruning_rounds=2)["policy"]
    assert register(client, policy="pruning-gts", window_size=5)["policy"] == "pruning-gts"

    # Without a policy, a spec that tunes only one policy's parameters gets that policy.
    tuned = register(client, job_id="test-tuned", num_pruning_rounds=0)
    assert tuned["policy"] == "pruning-gts"
    assert client.get("/jobs/test-tuned").json()["stage"] == "bandit"  # no pruning rounds
    client = make_client(default_policy="pruning-gts")
    assert register(client, prior_cv=0.2)["policy"] == "local-search-ts"
    assert register(client, window_size=3)["policy"] == "pruning-gts"  # both take it: default


def test_the_parameters_and_seed_reach_the_policys_state(
    client: TestClient, database_url: str
) -> None:
    params = {"explore_tolerance": 0.3, "prior_cv": 0.2, "window_size": 4, "mab_seed": 5}
    job_id = register(client, policy="local-search-ts", **params)["job_id"]
    expected = local_search_ts.new_state(
        [32, 64, 128, 256], 64, seed=5, explore_tolerance=0.3, prior_cv=0.2, window_size=4
    )
    assert _stored_state(database_url, job_id) == json.loads(expected.to_json())
    job_id = register(client, policy="pruning-gts", num_pruning_rounds=1, mab_seed=5)["job_id"]
    paper = pruning_gts.new_state([32, 64, 128, 256], 64, seed=5, num_pruning_rounds=1)
    assert _stored_state(database_url, job_id) == json.loads(paper.to_json())


def _other_policys_state(job_id: str, database_url: str) -> str:
    return pruning_gts.new_state([32, 64, 128, 256], 64, seed=1).to_json()


def _without_rng(job_id: str, database_url: str) -> str:
    state = _stored_state(database_url, job_id)
    del state["rng_state"]["state"]
    return json.dumps(state)


def _other_batch_sizes(job_id: str, database_url: str) -> str:
    return local_search_ts.new_state([32, 64], 64, seed=1).to_json()


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda job_id, url: "garbage",
        lambda job_id, url: "[1, 2]",
        _other_policys_state,
        _without_rng,
        _other_batch_sizes,
    ],
    ids=["not-json", "not-a-state", "other-policy", "no-rng", "other-batch-sizes"],
)
def test_an_unreadable_state_is_refused_until_the_job_is_reset(
    corrupt: Callable[[str, str], str],
    make_client: Callable[..., TestClient],
    database_url: str,
) -> None:
    client = make_client(token="t")
    client.headers["Authorization"] = "Bearer t"
    job_id = register(client, policy="local-search-ts")["job_id"]
    running = predict(client, job_id)
    broken = corrupt(job_id, database_url)
    _sql(database_url, "UPDATE bso_jobs SET policy_state_json = :s", s=broken)

    refused = client.get("/jobs/batch_size", params={"job_id": job_id})
    message = _refusal(refused, 409)
    assert message.startswith(f"job {job_id!r}: its stored local-search-ts state cannot be read (")
    assert f"zeus bso reset {job_id}" in message and "\n" not in message
    final = {**running, "time": 10.0, "energy": 1000.0, "metric": 0.9, "current_epoch": 1}
    assert client.post("/report", json=final).status_code == 409  # the outcome needs the state
    assert client.patch("/trials", json=running).status_code == 409
    assert _sql(database_url, "SELECT policy_state_json FROM bso_jobs") == broken  # untouched
    assert client.get(f"/jobs/{job_id}").json()["num_trials"] == 1  # reads still work

    reset = client.post("/admin/jobs/reset", params={"job_id": job_id})
    assert reset.status_code == 200 and reset.json()["policy"] == "local-search-ts"
    assert predict(client, job_id)["batch_size"] == 64  # a fresh search: the default first
    assert report(client, running, metric=0.9)["converged"] is True  # the old trial ends too


def test_a_policy_this_server_does_not_host_is_refused_clearly(
    make_client: Callable[..., TestClient], database_url: str
) -> None:
    """A job stored by another version of the server, with a policy this one does not know."""
    client = make_client(token="t")
    client.headers["Authorization"] = "Bearer t"
    job_id = register(client)["job_id"]
    _sql(database_url, "UPDATE bso_jobs SET policy = 'future-policy'")
    for response in (
        client.get("/jobs/batch_size", params={"job_id": job_id}),
        client.post("/admin/jobs/reset", params={"job_id": job_id}),
    ):
        message = _refusal(response, 409)
        assert f"job {job_id!r} uses policy 'future-policy', which this server does not host" in (
            message
        )
        assert "delete the job and register it again" in message
    assert client.get(f"/jobs/{job_id}").json()["policy"] == "future-policy"
    assert client.delete("/jobs", params={"job_id": job_id}).status_code == 200
    assert register(client, job_id=job_id)["policy"] == "local-search-ts"


def test_an_infeasible_local_search_job_says_so(client: TestClient, database_url: str) -> None:
    job_id = register(client, batch_sizes=[32, 64, 128], policy="local-search-ts")["job_id"]
    # The default fails at max_epochs; its neighbours are tried outward; one dies without a word.
    first = predict(client, job_id)
    report(client, first, current_epoch=10)
    second = predict(client, job_id)
    assert second["batch_size"] == 32
    assert client.patch("/trials", json=second).status_code == 200
    third = predict(client, job_id)
    assert third["batch_size"] == 128
    assert client.get(f"/jobs/{job_id}").json()["stage"] == "search"
    report(client, third, current_epoch=10)
    assert client.get(f"/jobs/{job_id}").json()["stage"] == "infeasible"
    message = _refusal(client.get("/jobs/batch_size", params={"job_id": job_id}), 409)
    assert f"job {job_id!r} cannot be optimised: every batch size failed" in message
    state = _stored_state(database_url, job_id)
    assert state["reached"] == {"32": [False], "64": [False], "128": [False]}
    assert state["exploration_in_flight"] is None


def test_the_default_policy_setting_names_a_hosted_policy() -> None:
    assert ServerSettings(default_policy="pruning_gts").default_policy == "pruning-gts"
    assert ServerSettings.from_env({}).default_policy == "local-search-ts"
    env = {"ZEUS_BSO_DEFAULT_POLICY": "grid-search"}
    with pytest.raises(ZeusConfigError, match=r"default_policy.*ZEUS_BSO_DEFAULT_POLICY") as caught:
        ServerSettings.from_env(env)
    assert HOSTED in str(caught.value)
    result = CliRunner().invoke(cli, ["serve", "--default-policy", "nope", "--migrate-only"])
    assert result.exit_code != 0 and "unknown policy 'nope'" in str(result.exception)
