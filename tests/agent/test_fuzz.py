"""Property-based fuzzing of every endpoint from the agent's own OpenAPI schema (schemathesis), as a
local caller that may lease (the peer is this process) and as a remote one, with metrics on:
whatever the input, no 5xx and no traceback; the GPUs stay within their ranges."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from tests.agent.helpers import audit, settings_in
from zeus.agent.app import create_app
from zeus.agent.peer import Peer
from zeus.agent.serve import with_peer
from zeus.device.replay import ReplayGPU


@pytest.mark.parametrize("caller", ["local", "remote"])
def test_every_operation_survives_generated_input(tmp_path: Path, caller: str) -> None:
    gpus = [ReplayGPU("a40-resnet50", index=i, state_dir=tmp_path / "replay") for i in (0, 1)]
    app = create_app(settings_in(tmp_path, metrics_port=9400), gpus=gpus)  # metrics on, unserved
    served = with_peer(app, Peer.of_process(os.getpid())) if caller == "local" else app
    schema = schemathesis.openapi.from_asgi("/openapi.json", served)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 13

    for operation in operations:
        strategy = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(
            GenerationMode.NEGATIVE
        )

        @given(case=strategy)
        @settings(
            max_examples=25,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def call(case: Any) -> None:
            response = case.call()
            assert response.status_code < 500, (case.method, case.path, response.text)
            assert "Traceback" not in response.text
            if response.status_code >= 400:
                assert set(response.json()) == {"message", "error"}, response.text

        call()
    for gpu in gpus:
        assert gpu.min_power_limit_w <= gpu.get_power_limit_w() <= gpu.max_power_limit_w
    events = {e["event"] for e in audit(tmp_path / "state")}
    # Locally, generated input got leases granted; remotely, nothing but refusals.
    assert events == ({"lease"} if caller == "local" else {"refused"})
