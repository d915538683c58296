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
    policy: local-search-ts     # local-search-ts | pruning-gts | default | grid-search | "package.module:Class"
    policy_args: {window_size: 0}
    max_tries: 10
    profile_params: "2,5"       # warmup,measure steps per power limit (ZEUS_PROFILE_PARAMS)
    use_optimal_pl: true
    env: {ZEUS_GPU: "replay:a40-resnet50"}
"""

from __future__ import annotations

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
from zeus.policy.base import BatchSizeOptimizer
from zeus.policy.registry import (
    ALIASES,
    BATCH_SIZE_POLICIES,
    DEFAULT_POLICY,
    make_batch_size_optimizer,
    policy_class,
    policy_names,
)


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
    policy: str = DEFAULT_POLICY
    policy_args: dict[str, Any] = Field(default_factory=dict)
    max_tries: PositiveInt = 10
    profile_params: str | None = None
    use_optimal_pl: bool = True
    env: dict[str, str] = Field(default_factory=dict)

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, value: str) -> str:
        if ":" not in value and value not in BATCH_SIZE_POLICIES and value not in ALIASES:
            raise ValueError(f"must be one of {policy_names()}, or 'package.module:Class'")
        try:
            policy_class(value)  # imports module:Class and checks that it implements the interface
        except ZeusConfigError as e:
            raise ValueError(str(e)) from None
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
        """A fresh instance of the configured policy (``seed`` goes to every policy that takes one,
        unless ``policy_args`` sets it)."""
        try:
            return make_batch_size_optimizer(self.policy, self.seed, self.policy_args)
        except ZeusConfigError as e:
            raise ZeusConfigError(f"field 'policy': {e}") from e


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
