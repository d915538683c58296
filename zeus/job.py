"""The immutable, hashable spec of a recurring training job."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from zeus.errors import ZeusConfigError, check_range


@dataclass(frozen=True)
class Job:
    """A recurring job: what is trained, to which target, from which default configuration.

    ``command`` (a template such as ``("python", "train.py", "--batch-size", "{bs}")``) and
    ``workdir`` are only needed by the local driver (`ZeusMaster`).
    """

    dataset: str
    network: str
    optimizer: str
    target_metric: float
    max_epochs: int
    default_bs: int
    default_lr: float | None = None
    higher_is_better: bool = True
    workdir: str | None = None
    command: tuple[str, ...] | None = field(default=None)

    def __post_init__(self) -> None:
        for name in ("dataset", "network", "optimizer"):
            if not getattr(self, name):
                raise ZeusConfigError(f"Job.{name} must be a non-empty string")
        check_range("Job.max_epochs", self.max_epochs, ge=1)
        check_range("Job.default_bs", self.default_bs, ge=1)
        if self.default_lr is not None:
            check_range("Job.default_lr", self.default_lr, gt=0)
        if self.command is not None and not isinstance(self.command, tuple):
            object.__setattr__(self, "command", tuple(self.command))

    @property
    def name(self) -> str:
        """Short id such as ``cifar100+shufflenetv2+adadelta``; used in file names and profiles."""
        return f"{self.dataset}+{self.network}+{self.optimizer}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (``command`` as a list), as series files and policy states keep them."""
        data = dataclasses.asdict(self)
        if data["command"] is not None:
            data["command"] = list(data["command"])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        """The inverse of `to_dict`; `ZeusConfigError` naming the problem for a malformed mapping."""
        try:
            return cls(**data)
        except TypeError as e:
            raise ZeusConfigError(f"malformed job {data!r}: {e}") from None
