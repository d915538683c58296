"""Server settings: arguments first, then ``ZEUS_BSO_*`` environment variables, read at start only."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from zeus.errors import ZeusConfigError

ENV_PREFIX = "ZEUS_BSO_"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class ServerSettings(BaseModel):
    """Everything the BSO server can be told. Environment: ``ZEUS_BSO_<FIELD NAME IN CAPITALS>``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    database_url: str = Field(
        default="sqlite:///./zeus_bso.db", description="SQLAlchemy URL of the database."
    )
    token: str | None = Field(
        default=None, description="Bearer token every endpoint but /health requires."
    )
    lease_seconds: float = Field(
        default=24 * 3600.0,
        gt=0,
        description="A running trial with no report for this long is treated as failed.",
    )
    max_body_bytes: int = Field(default=1 << 20, gt=0, description="Larger requests get 413.")
    host: str = Field(default="127.0.0.1", description="Interface to bind.")
    port: int = Field(default=8000, ge=0, le=65535)
    log_level: str = Field(default="info", pattern="^(critical|error|warning|info|debug)$")
    access_log: bool = Field(default=False, description="Log every request (costs CPU).")
    inline_database: bool | None = Field(
        default=None,
        description="Run database calls on the event loop instead of the thread pool "
        "(default: only for SQLite; cheaper for a database on the same host).",
    )
    migrate: bool = Field(
        default=True, description="Apply the shipped migrations when the app starts."
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ServerSettings:
        """Settings from ``ZEUS_BSO_*`` variables, overridden by the non-None ``overrides``."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is not None and raw != "":
                values[name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.model_validate(values)
        except ValidationError as e:
            first = e.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "settings"
            raise ZeusConfigError(
                f"server setting {field} (env {ENV_PREFIX}{field.upper()}): {first['msg']}"
            ) from None

    @property
    def binds_loopback(self) -> bool:
        return self.host in LOOPBACK_HOSTS
