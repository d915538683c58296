"""Agent settings: arguments first, then ``ZEUS_AGENT_*`` environment variables, read at start only."""

from __future__ import annotations

import grp
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from zeus.errors import ZeusConfigError

ENV_PREFIX = "ZEUS_AGENT_"
DEFAULT_SOCKET = "/run/zeus/agent.sock"
_LISTS = ("allow_uids", "allow_groups")


class AgentSettings(BaseModel):
    """Everything the node agent can be told. Environment: ``ZEUS_AGENT_<FIELD IN CAPITALS>``;
    lists are comma-separated."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gpu: str = Field(
        default="nvml",
        description="GPU backend of the devices the agent owns: 'nvml' or 'replay:<profile>[:<n>]'.",
    )
    socket: str = Field(default=DEFAULT_SOCKET, description="Path of the UNIX socket to serve.")
    socket_mode: str = Field(
        default="0660",
        pattern="^0?[0-7]{3}$",
        description="Permission bits of the socket (octal): who may connect at all.",
    )
    socket_group: str | None = Field(
        default=None, description="Group (name or gid) that owns the socket; default the agent's."
    )
    allow_uids: tuple[int, ...] = Field(
        default=(),
        description="Users that may lease GPUs (empty, with no groups: anyone who can connect).",
    )
    allow_groups: tuple[str, ...] = Field(
        default=(), description="Groups (names or gids) whose members may lease GPUs."
    )
    state_dir: str = Field(
        default="/var/lib/zeus-agent",
        description="Where the lease journal (journal.json), the audit log (audit.jsonl) and the "
        "metrics' energy totals (energy.json) live.",
    )
    tcp_host: str = Field(
        default="127.0.0.1", description="Interface of the optional TCP listener."
    )
    tcp_port: int | None = Field(
        default=None, ge=1, le=65535, description="Serve reads on TCP too (needs a token)."
    )
    token: str | None = Field(
        default=None, min_length=16, description="Bearer token that TCP clients must send."
    )
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Serve Prometheus metrics (GET /metrics only, read-only, no token) on this port.",
    )
    metrics_host: str = Field(
        default="127.0.0.1", description="Interface of the metrics listener (0.0.0.0: every one)."
    )
    metrics_interval_s: float = Field(
        default=1.0,
        ge=0.05,
        le=60.0,
        description="How often the agent samples its GPUs for metrics.",
    )
    holder_poll_s: float = Field(
        default=0.25, gt=0, le=1.0, description="How often the agent checks that holders live."
    )
    max_body_bytes: int = Field(default=64 * 1024, gt=0, description="Larger requests get 413.")
    log_level: str = Field(default="info", pattern="^(critical|error|warning|info|debug)$")

    @field_validator("gpu")
    @classmethod
    def _not_the_agent_itself(cls, value: str) -> str:
        if value.strip().partition(":")[0] == "agent":
            raise ValueError("the agent owns the devices itself: use 'nvml' or 'replay:<profile>'")
        return value.strip()

    @field_validator("allow_uids", "allow_groups", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        return value

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> AgentSettings:
        """Settings from ``ZEUS_AGENT_*`` variables, overridden by the non-None ``overrides``."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is not None and raw != "":
                values[name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None and v != ()})
        try:
            settings = cls.model_validate(values)
        except ValidationError as e:
            first = e.errors()[0]
            field = str(first["loc"][0]) if first["loc"] else "settings"
            raise ZeusConfigError(
                f"agent setting {field} (env {ENV_PREFIX}{field.upper()}): {first['msg']}"
            ) from None
        settings.check()
        return settings

    def check(self) -> None:
        """What a field alone cannot say: TCP needs a token, and named groups must exist."""
        if self.metrics_port is not None and self.metrics_port == self.tcp_port:
            raise ZeusConfigError(
                f"agent setting metrics_port (env ZEUS_AGENT_METRICS_PORT): {self.metrics_port} is "
                "tcp_port too; the metrics listener needs a port of its own"
            )
        if self.tcp_port is not None and not self.token:
            raise ZeusConfigError(
                "agent setting token (env ZEUS_AGENT_TOKEN): the agent refuses to listen on TCP "
                "without a bearer token of 16 characters or more"
            )
        for name in (self.socket_group, *self.allow_groups):
            if name is not None:
                group_id(name)

    @property
    def socket_mode_bits(self) -> int:
        return int(self.socket_mode, 8)

    @property
    def journal_path(self) -> Path:
        return Path(self.state_dir) / "journal.json"

    @property
    def audit_path(self) -> Path:
        return Path(self.state_dir) / "audit.jsonl"

    @property
    def energy_path(self) -> Path:
        return Path(self.state_dir) / "energy.json"

    @property
    def allowed_gids(self) -> frozenset[int]:
        return frozenset(group_id(g) for g in self.allow_groups)


def group_id(name: str) -> int:
    """A group's id from its name or number; ``ZeusConfigError`` naming it when unknown."""
    if name.isdigit():
        return int(name)
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise ZeusConfigError(
            f"agent setting: group {name!r} does not exist on this node"
        ) from None
