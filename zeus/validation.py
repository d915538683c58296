"""Pydantic validation errors worded for people: one line per problem, naming its field.

Job files (`zeus.run.jobfile`) and the BSO client's `JobSpec` validate with pydantic models; this
turns every problem a model found into ``field: what is wrong, got what`` and all of them into one
`ZeusConfigError`, so a user fixes a file in one go instead of one error per run.
"""

from __future__ import annotations

import difflib

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from zeus.errors import ZeusConfigError

_PHRASES = {
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be text",
    "list_type": "must be a list, e.g. [32, 64, 128]",
    "dict_type": "must be a mapping of names to values",
    "too_short": "must not be empty",
}
_BOUNDS = {
    "greater_than": ">",
    "greater_than_equal": ">=",
    "less_than": "<",
    "less_than_equal": "<=",
}


def _problem(item: ErrorDetails, model: type[BaseModel]) -> str:
    loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in item["loc"]).lstrip(".")
    kind, ctx, given = item["type"], item.get("ctx", {}), item.get("input")
    got = "nothing (empty value)" if given is None else repr(given)
    field = str(item["loc"][0]) if item["loc"] else ""
    if kind == "missing":
        info = model.model_fields.get(field)
        return f"{loc}: missing" + (f" ({info.description})" if info and info.description else "")
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(field, list(model.model_fields), n=1)
        return f"{loc}: unknown field" + (f"; did you mean {close[0]}?" if close else "")
    if kind in ("value_error", "assertion_error"):
        text = str(ctx.get("error", item["msg"]))
        return text if not loc or text.startswith(loc) else f"{loc}: {text}"
    if kind in _BOUNDS:
        limit = next(iter(ctx.values()))
        return f"{loc}: must be {_BOUNDS[kind]} {limit}, got {got}"
    if kind == "too_long":
        return f"{loc}: must have at most {ctx.get('max_length')} items or characters"
    if kind in _PHRASES:
        return f"{loc}: {_PHRASES[kind]}" + ("" if kind == "too_short" else f", got {got}")
    return f"{loc}: {item['msg']}, got {got}"


def problems(error: ValidationError, model: type[BaseModel]) -> list[str]:
    """Every problem of ``error`` as ``field: what is wrong`` (``model`` supplies the field
    descriptions shown for missing fields and the names suggested for misspelt ones)."""
    return [_problem(item, model) for item in error.errors()]


def config_error(source: str, found: list[str], sep: str = ": ") -> ZeusConfigError:
    """One error for all ``found`` problems of ``source``: on one line when there is one."""
    if len(found) == 1:
        return ZeusConfigError(f"{source}{sep}{found[0]}")
    listed = "".join(f"\n  - {p}" for p in found)
    return ZeusConfigError(f"{source} has {len(found)} problems:{listed}")
