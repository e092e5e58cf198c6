"""The one exception tree of patronlink.

::

    PatronlinkError
    ├── ValidationError            input that breaks a rule of the domain (bad phone, bad ISIL, ...)
    │   ├── InvalidPhoneNumber
    │   └── RegistrationRefused    a self-registration form that breaks the agency's form
    ├── NotFound                   a named thing does not exist (in the caller's scope)
    ├── Conflict                   a unique thing exists already (patron id, item number, ...)
    │   └── ImportInProgress       a run of that import source is going on already
    ├── Unauthenticated            the caller's credentials are wrong or missing
    ├── PermissionDenied           the caller may not do this
    ├── ConfigError                a configuration file or value is wrong (carries key and line)
    ├── SourceError                a patron-import source could not be read; no patron is changed
    │   ├── SourceUnavailable      down, refused, timed out, answered 4xx/5xx
    │   └── SourceFormatError      the body is malformed or truncated
    └── GatewayError               an SMS gateway did not take a message
        ├── TemporaryGatewayError  try again later (5xx, timeouts, provider unavailable)
        └── PermanentGatewayError  do not retry; the message goes to the staff error queue

Only ``patronlink.web`` turns these into HTTP statuses, and only ``patronlink.cli`` into exit codes.
Drivers translate third-party exceptions into this tree with ``raise ... from exc``.
"""

from __future__ import annotations


class PatronlinkError(Exception):
    """Base of every error patronlink raises on purpose."""


class ValidationError(PatronlinkError):
    """Input that breaks a domain rule; ``field`` names the input when known."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidPhoneNumber(ValidationError):
    """A phone number that cannot be read as a valid number of the given country."""


class RegistrationRefused(ValidationError):
    """A self-registration refused; ``problem`` says why (a ``registration.Problem`` value)."""

    def __init__(self, problem: str, message: str, fields: list[str] | tuple[str, ...]) -> None:
        super().__init__(message, field=fields[0] if fields else None)
        self.problem = problem
        self.fields = tuple(fields)


class NotFound(PatronlinkError):
    """The thing asked for does not exist, or not in the caller's agency."""


class Conflict(PatronlinkError):
    """A thing that must be unique exists already."""


class Unauthenticated(PatronlinkError):
    """Credentials are missing or wrong (never says which)."""


class PermissionDenied(PatronlinkError):
    """The caller is authenticated but may not do this."""


class ConfigError(PatronlinkError):
    """A configuration error, located by dotted key and (when known) line in the file."""

    def __init__(self, message: str, *, key: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.line = line

    def __str__(self) -> str:
        where = []
        if self.key:
            where.append(f"key {self.key}")
        if self.line:
            where.append(f"line {self.line}")
        prefix = f"{', '.join(where)}: " if where else ""
        return f"{prefix}{self.args[0]}"


class GatewayError(PatronlinkError):
    """An SMS gateway did not accept a message.

    ``http_status``, ``code`` and ``description`` are what the gateway answered, kept for the staff
    error queue so that staff see the gateway's own reason.
    """

    def __init__(
        self,
        description: str,
        *,
        http_status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(description)
        self.description = description
        self.http_status = http_status
        self.code = code


class TemporaryGatewayError(GatewayError):
    """The gateway may accept the message later: retry with backoff."""


class PermanentGatewayError(GatewayError):
    """The gateway will never accept this message as it is: straight to the error queue."""


class ImportInProgress(Conflict):
    """A run of the import source is in progress; one run per source at a time."""


class SourceError(PatronlinkError):
    """A patron-import source could not be read to the end; the run changes no patron."""


class SourceUnavailable(SourceError):
    """The source is down, refused us, timed out or answered with an HTTP error status."""

    def __init__(self, message: str, *, http_status: int | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status


class SourceFormatError(SourceError):
    """The body is not a feed of the configured format (malformed, truncated, wrong header)."""
