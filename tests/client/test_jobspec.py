"""`JobSpec`: validation with clear messages, id from the environment, GPU facts from the monitor."""

from __future__ import annotations

import pytest

from tests.client.helpers import replay_monitor, spec
from zeus.errors import ZeusConfigError
from zeus.monitor import ZeusMonitor
from zeus.optimizer.batch_size import JobSpec


@pytest.mark.parametrize(
    "overrides,field",
    [
        ({"batch_sizes": (8, 8, 16)}, "batch_sizes"),
        ({"batch_sizes": ()}, "batch_sizes"),
        ({"batch_sizes": (0, 32)}, "batch_sizes"),
        ({"default_batch_size": 12}, "default_batch_size"),
        ({"eta_knob": 1.5}, "eta_knob"),
        ({"beta_knob": 0.0}, "beta_knob"),
        ({"max_epochs": 0}, "max_epochs"),
        ({"max_power": -1.0}, "max_power"),
        ({"number_of_gpus": 0}, "number_of_gpus"),
        ({"job_id": "other-123"}, "job_id"),
        ({"job_id_prefix": ""}, "job_id_prefix"),
    ],
)
def test_bad_fields_name_themselves(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(ZeusConfigError, match=f"JobSpec.{field}"):
        spec(**overrides)


def test_job_id_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZEUS_JOB_ID", "mnist-nightly")
    job = JobSpec("mnist", (32, 64), 32)
    assert job.job_id == "mnist-nightly"
    assert JobSpec("mnist", (32, 64), 32, job_id="mnist-explicit").job_id == "mnist-explicit"
    monkeypatch.setenv("ZEUS_JOB_ID", "cifar-nightly")
    with pytest.raises(ZeusConfigError, match="ZEUS_JOB_ID"):
        JobSpec("mnist", (32, 64), 32)


def test_without_job_id_the_server_generates_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ZEUS_JOB_ID", raising=False)
    assert JobSpec("mnist", [64, 32], 32).to_wire()["job_id"] is None


def test_gpu_facts_come_from_the_monitor() -> None:
    monitor = replay_monitor()
    resolved = spec().resolved(monitor, world_size=4)
    gpu = monitor.gpus[0]
    assert resolved.number_of_gpus == 4
    assert resolved.max_power == gpu.max_power_limit_w * 4
    assert resolved.gpu_model == gpu.name
    explicit = spec(max_power=999.0, number_of_gpus=2, gpu_model="H100").resolved(monitor)
    assert (explicit.max_power, explicit.number_of_gpus, explicit.gpu_model) == (999.0, 2, "H100")


def test_no_gpus_needs_explicit_facts() -> None:
    monitor = ZeusMonitor(gpus=[], cpus=[], sync_execution_with="none")
    with pytest.raises(ZeusConfigError, match="max_power"):
        spec().resolved(monitor)
    resolved = spec(max_power=250.0, number_of_gpus=1, gpu_model="cpu").resolved(monitor)
    assert resolved.max_power == 250.0


def test_wire_body_has_exactly_the_spec_fields() -> None:
    body = spec(batch_sizes=[64, 8, 16, 32]).to_wire()
    assert body["batch_sizes"] == [64, 8, 16, 32]
    assert set(body) == {
        "job_id", "job_id_prefix", "batch_sizes", "default_batch_size", "eta_knob", "beta_knob",
        "target_metric", "higher_is_better_metric", "max_epochs", "num_pruning_rounds",
        "window_size", "mab_prior_mean", "mab_prior_precision", "mab_num_explorations",
        "mab_seed", "max_power", "number_of_gpus", "gpu_model",
    }  # fmt: skip
