"""The YAML job file of `zeus master run`: a recurring job, its candidates and the driver's knobs.

Example (every field but the first seven has a default)::

    command: python train.py --batch-size {bs} --lr {lr} --epochs {epochs} --seed {seed}
    optimizer: adam             # picks the learning-rate scaling (sqrt: Adam family, linear: SGD)
    target_metric: 0.9          # the validation metric the job must reach
    max_epochs: 10
    default_batch_size: 64      # b0, the batch size the job was tuned at
    batch_sizes: [16, 32, 64, 128]
    num_recurrence: 12
    learning_rate: 0.001        # at default_batch_size; omit if the job has none
    workdir: .                  # relative to this file
    dataset: digits             # names only used for ids and file names
    network: mlp
    eta_knob: 0.5
    beta_knob: 2.0              # null = no early stopping
    seed: 1
    policy: pruning_gts         # default | grid_search | pruning_gts | "package.module:Class"
    policy_args: {window_size: 0, num_pruning_rounds: 2}
    max_tries: 10
    profile_params: "2,5"       # warmup,measure steps per power limit (ZEUS_PROFILE_PARAMS)
    use_optimal_pl: true
    env: {ZEUS_GPU: "replay:a40-resnet50"}
"""

from __future__ import annotations

import importlib
import shlex
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    field_validator,
)

from zeus.errors import ZeusConfigError
from zeus.job import Job
from zeus.policy import (
    DefaultBatchSizeOptimizer,
    GridSearchBatchSizeOptimizer,
    PruningGTSBatchSizeOptimizer,
)
from zeus.policy.base import BatchSizeOptimizer

BUILTIN_POLICIES: dict[str, type[BatchSizeOptimizer]] = {
    "pruning_gts": PruningGTSBatchSizeOptimizer,
    "default": DefaultBatchSizeOptimizer,
    "grid_search": GridSearchBatchSizeOptimizer,
}


class JobFile(BaseModel):
    """One recurring job for `ZeusMaster` (validated; unknown fields are errors)."""

    model_config = ConfigDict(extra="forbid")

    command: str | list[str] = Field(min_length=1)
    optimizer: str = Field(min_length=1)
    target_metric: float
    max_epochs: PositiveInt
    default_batch_size: PositiveInt = Field(
        validation_alias=AliasChoices("default_batch_size", "b0")
    )
    batch_sizes: list[PositiveInt] = Field(min_length=1)
    num_recurrence: PositiveInt
    learning_rate: float | None = Field(default=None, gt=0)
    higher_is_better: bool = True
    workdir: str = "."
    dataset: str = Field(default="custom", min_length=1)
    network: str = Field(default="custom", min_length=1)
    eta_knob: float = Field(default=0.5, ge=0, le=1)
    beta_knob: float | None = Field(default=2.0, gt=0)
    seed: int = 0
    policy: str = "pruning_gts"
    policy_args: dict[str, Any] = Field(default_factory=dict)
    max_tries: PositiveInt = 10
    profile_params: str | None = None
    use_optimal_pl: bool = True
    env: dict[str, str] = Field(default_factory=dict)

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, value: str) -> str:
        if value not in BUILTIN_POLICIES and ":" not in value:
            allowed = ", ".join(BUILTIN_POLICIES)
            raise ValueError(f"must be one of {allowed}, or 'package.module:Class'")
        return value

    @field_validator("profile_params")
    @classmethod
    def _warmup_measure(cls, value: str | None) -> str | None:
        if value is not None:
            parse_profile_params(value)
        return value

    def command_args(self) -> tuple[str, ...]:
        return tuple(shlex.split(self.command) if isinstance(self.command, str) else self.command)

    def to_job(self, base_dir: Path) -> Job:
        """The `Job`, with ``workdir`` resolved against ``base_dir`` (the job file's folder)."""
        if self.default_batch_size not in self.batch_sizes:
            raise ZeusConfigError(
                f"default_batch_size {self.default_batch_size} must be one of batch_sizes "
                f"{sorted(self.batch_sizes)}"
            )
        return Job(
            dataset=self.dataset,
            network=self.network,
            optimizer=self.optimizer,
            target_metric=self.target_metric,
            max_epochs=self.max_epochs,
            default_bs=self.default_batch_size,
            default_lr=self.learning_rate,
            higher_is_better=self.higher_is_better,
            workdir=str((base_dir / self.workdir).resolve()),
            command=self.command_args(),
        )

    def make_policy(self) -> BatchSizeOptimizer:
        """A fresh instance of the configured policy (built-ins get ``seed`` unless overridden)."""
        args = dict(self.policy_args)
        if self.policy == "pruning_gts":
            args.setdefault("seed", self.seed)
        cls = BUILTIN_POLICIES.get(self.policy) or _import_policy(self.policy)
        try:
            return cls(**args)
        except TypeError as e:
            raise ZeusConfigError(f"policy_args for {self.policy}: {e}") from e


def parse_profile_params(text: str) -> tuple[int, int]:
    """``"warmup,measure"`` -> ``(warmup, measure)``, both integers, measure >= 1."""
    parts = text.split(",")
    try:
        warmup, measure = (int(p) for p in parts)
    except ValueError:
        raise ZeusConfigError(
            f"profile_params must be 'warmup,measure' (two integers), got {text!r}"
        ) from None
    if warmup < 0 or measure < 1:
        raise ZeusConfigError(f"profile_params needs warmup >= 0 and measure >= 1, got {text!r}")
    return warmup, measure


def _import_policy(path: str) -> type[BatchSizeOptimizer]:
    module_name, _, attr = path.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise ZeusConfigError(f"policy {path!r} cannot be imported: {e}") from e
    if not (isinstance(cls, type) and issubclass(cls, BatchSizeOptimizer)):
        raise ZeusConfigError(f"policy {path!r} is not a zeus.policy.BatchSizeOptimizer subclass")
    return cls


def _describe(error: ValidationError, source: str) -> str:
    problems = []
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"]) or "(top level)"
        problems.append(f"field '{field}': {item['msg']}")
    return f"{source}: " + "; ".join(problems)


def parse_job_file(data: Any, source: str = "job file") -> JobFile:
    """Validate parsed YAML; `ZeusConfigError` naming every bad or missing field."""
    if not isinstance(data, dict):
        raise ZeusConfigError(f"{source}: must be a mapping of fields, got {type(data).__name__}")
    try:
        return JobFile.model_validate(data)
    except ValidationError as e:
        raise ZeusConfigError(_describe(e, source)) from None


def load_job_file(path: str | Path) -> JobFile:
    """Read and validate a YAML job file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ZeusConfigError(f"cannot read job file {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ZeusConfigError(f"{path} is not valid YAML: {e}") from None
    return parse_job_file(data, str(path))
