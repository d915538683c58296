"""The server's seam to the batch-size policies: which one a job gets, its parameters, its state.

The server hosts the registered policies that have a pure per-job core
(`zeus.policy.registry.core_policy_names`: ``local-search-ts``, ``pruning-gts``), keeps one core
state per job in its database (``state.to_dict()`` as JSON, beside the policy's name) and calls the
core's functions on it, as the simulator and `ZeusMaster` do. It never imports code that a job spec
names (``module:Class``).

A job gets the policy its spec names; a spec without one gets the server's default, unless it sets
parameters that only another policy takes (an original client tuning ``num_pruning_rounds`` keeps
the paper's policy). A parameter counts as set when it differs from its default; one set for a
policy that does not take it is refused (422 naming the field).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any, NamedTuple

from zeus.errors import ZeusConfigError
from zeus.optimizer.batch_size.schemas import JobSpecFromClient
from zeus.policy.registry import canonical_name, core_parameters, core_policy_names, policy_class
from zeus.server.errors import InvalidSpec, StateUnreadable

# Job spec field -> keyword of the cores' ``new_state``. Which policy takes which keyword is read
# from the cores' signatures; this table only renames (the wire names predate other policies).
POLICY_PARAMETERS = {
    "window_size": "window_size",
    "num_pruning_rounds": "num_pruning_rounds",
    "mab_prior_mean": "prior_mean",
    "mab_prior_precision": "prior_precision",
    "mab_num_explorations": "num_explorations",
    "explore_tolerance": "explore_tolerance",
    "prior_cv": "prior_cv",
}
MAX_REASON_CHARS = 200


class HostedPolicy(NamedTuple):
    name: str
    core: Any  # the pure core module: new_state, next_batch_size, observe, stage, ...
    state_type: Any  # its state class: to_dict / from_dict
    parameters: frozenset[str]  # the core's new_state keywords (seed aside)


def hosted_names() -> str:
    return ", ".join(core_policy_names())


def hosted_name(policy: str) -> str:
    """The registered name of a policy the server hosts; `ZeusConfigError` naming the hosted ones."""
    if ":" in policy:
        raise ZeusConfigError(
            f"policy {policy!r}: the server hosts only its registered policies ({hosted_names()}), "
            "never a class named by a job"
        )
    try:
        name = canonical_name(policy)
    except ZeusConfigError:
        raise ZeusConfigError(
            f"unknown policy {policy!r}; the server hosts {hosted_names()}"
        ) from None
    if name not in core_policy_names():
        raise ZeusConfigError(
            f"policy {name!r} is a baseline without a per-job state; the server hosts "
            f"{hosted_names()}"
        )
    return name


@cache
def hosted(policy: str) -> HostedPolicy:
    """The core of a hosted policy, by registered name or alias."""
    name = hosted_name(policy)
    cls: Any = policy_class(name)
    return HostedPolicy(name, cls.core, cls.state_type, core_parameters(name))


def _set_fields(spec: JobSpecFromClient) -> list[str]:
    """The policy parameters the spec sets: those that differ from their defaults."""
    fields = type(spec).model_fields
    return [f for f in POLICY_PARAMETERS if getattr(spec, f) != fields[f].default]


def resolve_policy(spec: JobSpecFromClient, default: str) -> str:
    """The registered name of the policy a new job gets (see the module docstring)."""
    given = _set_fields(spec)
    if spec.policy is not None:
        try:
            policy = hosted(spec.policy)
        except ZeusConfigError as e:
            raise InvalidSpec("policy", str(e)) from None
        for field in given:
            if POLICY_PARAMETERS[field] not in policy.parameters:
                raise InvalidSpec(field, _foreign(field, policy.name))
        return policy.name
    candidates = [default, *(n for n in core_policy_names() if n != default)]
    for name in candidates:
        if all(POLICY_PARAMETERS[f] in hosted(name).parameters for f in given):
            return name
    raise InvalidSpec(
        "policy",
        f"no policy takes all of {', '.join(given)}: name one in `policy` and set only its "
        f"parameters ({_table()})",
    )


def _foreign(field: str, policy: str) -> str:
    takers = [n for n in core_policy_names() if POLICY_PARAMETERS[field] in hosted(n).parameters]
    return (
        f"{field} does not apply to policy {policy}; it is a parameter of {', '.join(takers)} "
        f"({_table()})"
    )


def _table() -> str:
    """Which fields each hosted policy takes, for error messages."""
    return "; ".join(
        f"{n}: " + ", ".join(f for f, k in POLICY_PARAMETERS.items() if k in hosted(n).parameters)
        for n in core_policy_names()
    )


def fresh_state(spec: JobSpecFromClient, policy: str) -> Any:
    """The state of a job that has learned nothing yet; parameters left unset take the core's
    defaults, and ``mab_seed`` seeds every policy."""
    hosted_policy = hosted(policy)
    params = {
        keyword: getattr(spec, field)
        for field, keyword in POLICY_PARAMETERS.items()
        if keyword in hosted_policy.parameters and getattr(spec, field) is not None
    }
    return hosted_policy.core.new_state(
        spec.batch_sizes, spec.default_batch_size, seed=spec.mab_seed, **params
    )


def load_state(job_id: str, policy: str, state_json: str, spec: JobSpecFromClient) -> Any:
    """The job's stored state, decoded; `StateUnreadable` (409) saying what to do when it cannot be:
    a policy this server does not host, malformed JSON, or a format its policy no longer reads."""
    hosted_policy = hosted_or_refuse(job_id, policy)
    try:
        state = hosted_policy.state_type.from_dict(json.loads(state_json))
        state.rng  # decode the generator now, not in the middle of a decision  # noqa: B018
        if state.batch_sizes != spec.batch_sizes or state.default_bs != spec.default_batch_size:
            raise ValueError("its batch sizes are not the job's")
    except (ZeusConfigError, ValueError, TypeError, KeyError, AttributeError) as e:
        reason = str(e).replace("\n", " ")[:MAX_REASON_CHARS]
        raise StateUnreadable(
            f"job {job_id!r}: its stored {hosted_policy.name} state cannot be read ({reason}); "
            f"reset the job (zeus bso reset {job_id}, or POST /admin/jobs/reset) or delete it "
            "and register it again"
        ) from None
    return state


def hosted_or_refuse(job_id: str, policy: str) -> HostedPolicy:
    """The stored policy of a job, or `StateUnreadable` when this server does not host it (the
    job came from another version of the server)."""
    try:
        return hosted(policy)
    except ZeusConfigError:
        raise StateUnreadable(
            f"job {job_id!r} uses policy {policy[:64]!r}, which this server does not host "
            f"({hosted_names()}): serve it with the version that registered it, or delete the job "
            "and register it again"
        ) from None


def stage_of(policy: str, state: Any) -> str:
    """Where the job stands (the ``stage`` of GET /jobs and /metrics), in its policy's words."""
    stage: str = hosted(policy).core.stage(state)
    return stage
