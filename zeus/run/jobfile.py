"""The YAML job file of `zeus master run`: a recurring job, its candidates and the driver's knobs.

Example (every field but the first six has a default; ``num_recurrence`` may come from
``zeus master run --recurrences`` instead)::

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
    profile_params: "10,40"     # warmup,measure steps per power limit (ZEUS_PROFILE_PARAMS)
    use_optimal_pl: true
    env: {ZEUS_GPU: "replay:a40-resnet50"}
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from zeus.cost import check_eta
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
from zeus.run.env import parse_profile_params
from zeus.run.launch import check_template
from zeus.validation import config_error, problems


class JobFile(BaseModel):
    """One recurring job for `ZeusMaster` (validated; unknown fields are errors).

    Validate with `parse_job_file` / `load_job_file`: they pass the job file's folder (``workdir``
    is checked against it) and report every problem of the file at once, worded for people.
    """

    model_config = ConfigDict(extra="forbid")

    command: str | list[str] = Field(
        min_length=1, description="the command template, e.g. python train.py --batch-size {bs}"
    )
    optimizer: str = Field(min_length=1, description="the training optimizer, e.g. adam or sgd")
    target_metric: float = Field(description="the validation metric the job must reach")
    max_epochs: PositiveInt = Field(description="the most epochs one run may train")
    batch_sizes: list[PositiveInt] = Field(
        min_length=1, description="the candidate batch sizes, e.g. [32, 64, 128]"
    )
    default_batch_size: PositiveInt = Field(
        validation_alias=AliasChoices("default_batch_size", "b0"),
        description="b0, the batch size the job was tuned at (one of batch_sizes)",
    )
    num_recurrence: PositiveInt | None = None
    learning_rate: float | None = Field(default=None, gt=0)
    higher_is_better: bool = True
    workdir: str = "."
    dataset: str = Field(default="custom", min_length=1)
    network: str = Field(default="custom", min_length=1)
    eta_knob: Annotated[float, AfterValidator(lambda eta: check_eta(eta))] = 0.5
    beta_knob: float | None = Field(default=2.0, gt=0)
    seed: int = 0
    policy: str = DEFAULT_POLICY
    policy_args: dict[str, Any] = Field(default_factory=dict)
    max_tries: PositiveInt = 10
    profile_params: str | None = None
    use_optimal_pl: bool = True
    env: dict[str, str] = Field(default_factory=dict)

    @field_validator("command")
    @classmethod
    def _known_placeholders(cls, value: str | list[str]) -> str | list[str]:
        check_template(_split(value))
        return value

    @field_validator("default_batch_size")
    @classmethod
    def _among_candidates(cls, value: int, info: ValidationInfo) -> int:
        candidates = info.data.get("batch_sizes")
        if candidates is not None and value not in candidates:
            raise ValueError(f"{value} is not one of batch_sizes {sorted(candidates)}")
        return value

    @field_validator("workdir")
    @classmethod
    def _existing_folder(cls, value: str, info: ValidationInfo) -> str:
        base_dir = (info.context or {}).get("base_dir")
        if base_dir is not None and not (Path(base_dir) / value).is_dir():
            raise ValueError(f"{(Path(base_dir) / value).resolve()} is not a folder")
        return value

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
        return _split(self.command)

    def profile_steps(self) -> tuple[int, int] | None:
        """``profile_params`` as ``(warmup, measure)``; None = the run's default."""
        return None if self.profile_params is None else parse_profile_params(self.profile_params)

    def to_job(self, base_dir: Path) -> Job:
        """The `Job`, with ``workdir`` resolved against ``base_dir`` (the job file's folder)."""
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
            raise ZeusConfigError(f"policy_args: {e}") from e


def _split(command: str | list[str]) -> tuple[str, ...]:
    return tuple(shlex.split(command) if isinstance(command, str) else command)


def parse_job_file(
    data: Any, source: str = "job file", base_dir: str | Path | None = None
) -> JobFile:
    """Validate parsed YAML; one `ZeusConfigError` listing every problem, each naming its field.

    ``base_dir`` (the job file's folder) makes ``workdir`` checked as an existing folder.
    """
    if data is None:
        raise ZeusConfigError(f"{source}: the file is empty; it needs the fields of a job")
    if not isinstance(data, dict):
        raise ZeusConfigError(
            f"{source}: must be a mapping of fields (name: value), not a list or text"
        )
    try:
        return JobFile.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as e:
        raise config_error(source, problems(e, JobFile)) from None


def load_job_file(path: str | Path) -> JobFile:
    """Read and validate a YAML job file (``workdir`` relative to the file's folder)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise ZeusConfigError(f"cannot read job file {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ZeusConfigError(f"{path} is not valid YAML: {e}") from None
    return parse_job_file(data, str(path), path.parent)
