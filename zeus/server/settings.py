"""Server settings: arguments first, then ``ZEUS_BSO_*`` environment variables, read at start only."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from zeus.errors import ZeusConfigError

ENV_PREFIX = "ZEUS_BSO_"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


class ServerSettings(BaseModel):
    """Everything the BSO server can be told. Environment: ``ZEUS_BSO_<FIELD NAME IN CAPITALS>``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    database_url: str = Field(
        default="sqlite:///./zeus_bso.db", description="SQLAlchemy URL of the database."
    )
    token: str | None = Field(
        default=None, description="Bearer token every endpoint but /health requires."
    )
    token_file: Path | None = Field(
        default=None, description="File holding the token (instead of `token`); read at start."
    )
    allowed_hosts: tuple[str, ...] | None = Field(
        default=None,
        description="Host header values served (comma-separated in the environment; `*`: any). "
        "Default: the bound address and the loopback names, plus this machine's name when bound "
        "to every interface.",
    )
    lease_seconds: float = Field(
        default=24 * 3600.0,
        gt=0,
        description="Hard cap of a trial's lease, and its lease before the job has shown how long "
        "an epoch takes.",
    )
    lease_epoch_multiple: float = Field(
        default=3.0, ge=1.0, description="A lease lasts this many of the job's longest epoch, ..."
    )
    lease_floor_seconds: float = Field(default=60.0, gt=0, description="... at least this, ...")
    lease_ceiling_seconds: float = Field(
        default=6 * 3600.0, gt=0, description="... and at most this (and `lease_seconds`)."
    )
    database_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        le=600,
        description="Longest wait for a pooled connection, a lock or a statement; past it the "
        "request gets 503 with Retry-After.",
    )
    max_body_bytes: int = Field(default=1 << 20, gt=0, description="Larger requests get 413.")
    max_header_bytes: int = Field(
        default=16 << 10,
        ge=1024,
        description="Request line plus headers larger than this get 431 (connection closed).",
    )
    header_timeout_seconds: float = Field(
        default=10.0, gt=0, description="A request's headers must arrive within this time."
    )
    host: str = Field(default="127.0.0.1", description="Interface to bind.")
    port: int = Field(default=8000, ge=0, le=65535)
    log_level: str = Field(default="info", pattern="^(critical|error|warning|info|debug)$")
    access_log: bool = Field(default=False, description="Log every request (costs CPU).")
    inline_database: bool | None = Field(
        default=None,
        description="Run database writes on the event loop instead of the thread pool "
        "(default: only for SQLite; cheaper for a database on the same host).",
    )
    migrate: bool = Field(
        default=True, description="Apply the shipped migrations when the app starts."
    )

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [h.strip() for h in value.split(",") if h.strip()]
        return value

    @model_validator(mode="before")
    @classmethod
    def _read_token_file(cls, values: Any) -> Any:
        if not isinstance(values, dict) or values.get("token_file") in (None, ""):
            return values
        path = Path(values["token_file"])
        if values.get("token") not in (None, ""):
            raise ZeusConfigError("give the token or a token file, not both")
        try:
            token = path.read_text().strip()
        except OSError as e:
            raise ZeusConfigError(f"cannot read {path}: {e.strerror}") from None
        if not token:
            raise ZeusConfigError(f"{path} is empty")
        return {**values, "token": token}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ServerSettings:
        """Settings from ``ZEUS_BSO_*`` variables, overridden by the non-None ``overrides``."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is not None and raw != "":
                values[name] = raw
        given = {k: v for k, v in overrides.items() if v is not None}
        if given.get("token") is not None or given.get("token_file") is not None:
            values.pop("token", None)  # an argument replaces the environment's token or file
            values.pop("token_file", None)
        values.update(given)
        try:
            return cls.model_validate(values)
        except ValidationError as e:
            first = e.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "token_file"
            msg = first["msg"].removeprefix("Value error, ")
            raise ZeusConfigError(
                f"server setting {field} (env {ENV_PREFIX}{field.upper()}): {msg}"
            ) from None

    def to_env(self) -> dict[str, str]:
        """The settings as ``ZEUS_BSO_*`` variables (the token resolved; no file, no migration)."""
        env = {}
        for name, value in self.model_dump(exclude={"token_file", "migrate"}).items():
            if isinstance(value, tuple):
                value = ",".join(value)
            if value is not None:
                env[ENV_PREFIX + name.upper()] = str(value)
        return env

    @property
    def binds_loopback(self) -> bool:
        return self.host in LOOPBACK_HOSTS

    def served_hosts(self) -> frozenset[str] | None:
        """The Host header names served (lower case, no port); None: any."""
        if self.allowed_hosts is not None:
            hosts = {h.lower().strip("[]") for h in self.allowed_hosts}
            return None if "*" in hosts else frozenset(hosts)
        hosts = {*LOOPBACK_HOSTS, self.host.lower().strip("[]")}
        if self.host in WILDCARD_HOSTS:
            hosts.add(socket.gethostname().lower())
        return frozenset(hosts)
