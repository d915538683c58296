"""Pieces shared by the pure per-job policy cores (`pruning_gts`, `local_search_ts`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

from zeus.errors import ZeusConfigError, ZeusError


class NoFeasibleBatchSize(ZeusError, RuntimeError):
    """Every batch size tried failed to reach the target: the job cannot be optimised as specified."""


_State = TypeVar("_State", bound="JSONState")


class JSONState:
    """``to_json``/``from_json`` for a core's state, over its ``to_dict``/``from_dict``."""

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_dict(cls: type[_State], data: dict[str, Any]) -> _State:
        raise NotImplementedError

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls: type[_State], text: str) -> _State:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ZeusConfigError(f"{cls.__name__} JSON is malformed: {e}") from e
        return cls.from_dict(data)


def check_batch_sizes(batch_sizes: list[int], default_bs: int) -> list[int]:
    """The sorted distinct candidates; `ZeusConfigError` unless non-empty, positive, with the default."""
    sizes = sorted(set(int(b) for b in batch_sizes))
    if not sizes or sizes[0] < 1:
        raise ZeusConfigError(
            f"batch_sizes must be a non-empty list of positive ints, got {batch_sizes}"
        )
    if default_bs not in sizes:
        raise ZeusConfigError(f"default batch size {default_bs} must be one of batch_sizes {sizes}")
    return sizes


def encode_rng(state: Mapping[str, Any]) -> dict[str, Any]:
    """PCG64 holds 128-bit integers; keep them as decimal strings so any JSON store is exact."""
    inner = state["state"]
    return {
        "bit_generator": state["bit_generator"],
        "state": {"state": str(inner["state"]), "inc": str(inner["inc"])},
        "has_uint32": int(state["has_uint32"]),
        "uinteger": int(state["uinteger"]),
    }


def decode_rng(data: dict[str, Any]) -> dict[str, Any]:
    inner = data["state"]
    return {
        "bit_generator": data["bit_generator"],
        "state": {"state": int(inner["state"]), "inc": int(inner["inc"])},
        "has_uint32": int(data["has_uint32"]),
        "uinteger": int(data["uinteger"]),
    }
