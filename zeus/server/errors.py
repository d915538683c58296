"""Domain errors of the BSO server; one exception handler in `app.py` maps them to status codes."""

from __future__ import annotations

from zeus.errors import ZeusServerError


class DomainError(ZeusServerError):
    """A request the server refuses on purpose. ``keep_changes``: commit the transaction anyway."""

    status_code = 400
    field: str | None = None  # the body field at fault, when there is one

    def __init__(self, message: str, *, keep_changes: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.keep_changes = keep_changes


class UnknownJob(DomainError):
    """No such job on predict/report (400, as existing clients expect)."""

    status_code = 400


class JobNotFound(DomainError):
    """No such job on end/delete/detail."""

    status_code = 404


class UnknownTrial(DomainError):
    status_code = 404


class SpecConflict(DomainError):
    """The job id is registered with a different spec."""

    status_code = 409


class JobInfeasible(DomainError):
    """Every candidate batch size failed: the job cannot make progress."""

    status_code = 409


class Unauthorized(DomainError):
    status_code = 401


class ImplausibleReport(DomainError):
    """A report whose time or energy no working job sends (answered like a validation error)."""

    status_code = 422

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
