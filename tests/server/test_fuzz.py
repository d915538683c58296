"""Property-based fuzzing of every endpoint from the server's own OpenAPI schema (schemathesis).

Bounded: a few examples per operation. Whatever the input, the server answers without a 5xx, and no
body carries SQL, a traceback or a database driver's name.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from zeus.server import ServerSettings, create_app

LEAKS = ("Traceback", "SELECT", "INSERT", "UPDATE bso", "sqlalchemy", "psycopg", "sqlite3")


def test_every_operation_survives_generated_input(database_url: str) -> None:
    # schemathesis addresses the app as "testserver": serve that name (and only it).
    served = ServerSettings(database_url=database_url, allowed_hosts=("testserver",))
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(served))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 10  # every endpoint of the spec, the read and admin endpoints

    for operation in operations:
        strategy = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(
            GenerationMode.NEGATIVE
        )

        @given(case=strategy)
        @settings(
            max_examples=20,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def call(case: Any) -> None:
            response = case.call()
            assert response.status_code < 500, (case.method, case.path, response.text)
            for leak in LEAKS:
                assert leak not in response.text, (case.method, case.path, response.text)

        call()
