"""The TOML configuration that ``patronlink config apply`` reads, as pydantic models.

Every table forbids unknown keys, so a misspelt key is an error naming it rather than a setting
silently ignored. Secrets of gateways and sources may be ``${VAR}`` references; they are stored as
written and resolved when used. Integration-user passwords are hashed on apply.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticError

from patronlink.domain.agency import (
    Branch,
    validate_country_code,
    validate_isil,
    validate_timezone,
)
from patronlink.domain.errors import ConfigError, ValidationError
from patronlink.domain.registration import (
    FIELD_NAMES,
    Choice,
    FieldOverride,
    Usage,
    build_form,
)
from patronlink.domain.replies import check_template
from patronlink.domain.sender import check_gatewayapi_sender, check_linkmobility_source

_QUIET_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")
SMS_DRIVERS = ("xml", "linkmobility", "kannel", "console")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


def _domain(check: Any, value: Any) -> Any:
    try:
        return check(value)
    except ValidationError as exc:
        raise ValueError(str(exc)) from exc


def _http_url(value: str, *, allow_file: bool = False) -> str:
    parts = urlsplit(value)
    schemes = ("http", "https", "file") if allow_file else ("http", "https")
    if parts.scheme not in schemes or (parts.scheme != "file" and not parts.hostname):
        allowed = " or ".join(f"{s}://" for s in schemes)
        raise ValueError(f"{value!r} is not a URL ({allowed} expected)")
    return value


class BranchConfig(_Strict):
    code: str = Field(min_length=1, max_length=16)
    name: str = Field(min_length=1, max_length=200)


class SmsConfig(_Strict):
    driver: Literal["xml", "linkmobility", "kannel", "console", "gatewayapi"]
    url: str | None = None
    username: str | None = None
    password: str | None = None
    platform_id: str | None = None
    platform_partner_id: str | None = None
    source: str | None = Field(default=None, max_length=32)
    max_attempts: int = Field(default=5, ge=1, le=50)
    quiet_hours: str | None = None
    connect_timeout: float = Field(default=5.0, gt=0, le=60)
    read_timeout: float = Field(default=15.0, gt=0, le=300)
    concurrency: int = Field(default=4, ge=1, le=64)
    # Delivery reports and provider callbacks (issue 16).
    token: str | None = None  # gatewayapi: the API token (a ${VAR} reference, preferably)
    webhook_secret: str | None = None  # gatewayapi: the webhook's JWT secret
    dlr_gate_id: str | None = Field(default=None, max_length=64)  # linkmobility
    source_ton: Literal["ALPHANUMERIC", "SHORTNUMBER", "MSISDN"] | None = None  # linkmobility

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, value: str | None) -> str | None:
        if value is not None and not _QUIET_HOURS.match(value):
            raise ValueError(f"{value!r} is not a time range like 21:00-08:00")
        return value

    @model_validator(mode="after")
    def _driver_needs(self) -> SmsConfig:
        needs: dict[str, tuple[str, ...]] = {
            "xml": ("url", "username", "password"),
            "linkmobility": (
                "url",
                "username",
                "password",
                "platform_id",
                "platform_partner_id",
                "source",
            ),
            "kannel": ("url", "username", "password"),
            "console": (),
            "gatewayapi": ("url", "token"),
        }
        missing = [k for k in needs[self.driver] if not getattr(self, k)]
        if missing:
            raise ValueError(f"driver {self.driver!r} needs {', '.join(missing)}")
        try:
            if self.driver == "linkmobility" and self.source:
                check_linkmobility_source(self.source, self.source_ton)
            if self.driver == "gatewayapi" and self.source:
                check_gatewayapi_sender(self.source)
        except ValidationError as exc:
            raise ValueError(str(exc)) from exc
        return self

    def quiet_window(self) -> tuple[dt.time, dt.time] | None:
        if self.quiet_hours is None:
            return None
        start, end = self.quiet_hours.split("-")
        return dt.time.fromisoformat(start), dt.time.fromisoformat(end)


class RenewalConfig(_Strict):
    sms_enabled: bool = False
    loan_days: int = Field(default=30, ge=1, le=3650)
    max_renewals: int = Field(default=3, ge=0, le=1000)
    renew_not_before_days: int | None = Field(default=None, ge=0, le=3650)


class IntegrationUserConfig(_Strict):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=8, max_length=1024)


class RegistrationValueConfig(_Strict):
    code: str = Field(min_length=1, max_length=64)
    label: str | None = Field(default=None, max_length=200)
    default: bool = False


class RegistrationFieldConfig(_Strict):
    """One field of the form; what is left out keeps the spec example's setting."""

    usage: Literal["Mandatory", "Optional"] | None = None
    max_len: int | None = Field(default=None, ge=1)
    values: list[RegistrationValueConfig] | None = None
    default: str | None = Field(default=None, max_length=2000)


class RegistrationConfig(_Strict):
    """``[agencies.registration]``: the agency's self-registration form and policy."""

    # A self-registered patron has shown no identification yet; staff activate them.
    new_patron_status: Literal["active", "pending"] = "pending"
    fields: dict[str, RegistrationFieldConfig] = Field(default_factory=dict)

    @field_validator("fields")
    @classmethod
    def _known(
        cls, value: dict[str, RegistrationFieldConfig]
    ) -> dict[str, RegistrationFieldConfig]:
        unknown = [name for name in value if name not in FIELD_NAMES]
        if unknown:
            raise ValueError(
                f"unknown registration field {unknown[0]!r}; the fields are those of the "
                f"Aleph form: {', '.join(FIELD_NAMES)}"
            )
        return value

    def overrides(self) -> dict[str, FieldOverride]:
        return {
            name: FieldOverride(
                usage=Usage(f.usage) if f.usage else None,
                max_len=f.max_len,
                choices=None
                if f.values is None
                else tuple(Choice(v.code, v.label, v.default) for v in f.values),
                default_text=f.default,
            )
            for name, f in self.fields.items()
        }

    @model_validator(mode="after")
    def _consistent(self) -> RegistrationConfig:
        # Checked against the spec's form; the agency's branches only widen the branch lists.
        _domain(lambda o: build_form((), o), self.overrides())
        return self


def _console() -> SmsConfig:
    return SmsConfig(driver="console")


class AgencySettings(_Strict):
    """The sections of an agency stored with it (``agencies.settings``, secrets still as written),
    as ``config apply`` writes them and as every reader uses them: each default is written here
    once. ``AgencyConfig`` is these and the agency's own columns."""

    sms: SmsConfig = Field(default_factory=_console)
    renewal: RenewalConfig = Field(default_factory=RenewalConfig)
    # Reply texts overriding the built-in Danish/English ones (renewal by SMS), by text key.
    texts: dict[str, str] = Field(default_factory=dict)
    # Self-registration: the Aleph New Patron form (new_bor_register) and the new patron's status.
    registration: RegistrationConfig = Field(default_factory=RegistrationConfig)
    # Days after a patron's expiry date (or, for an inactive patron, after the last change) before
    # the worker anonymises them; unset keeps patrons until staff act (issue 18).
    retention_days: int | None = Field(default=None, ge=1, le=36500)

    @field_validator("texts")
    @classmethod
    def _texts(cls, value: dict[str, str]) -> dict[str, str]:
        for key, template in value.items():
            check_template(key, template)
        return value

    def stored(self) -> dict[str, Any]:
        """The sections as the ``settings`` column holds them."""
        stored: dict[str, Any] = {
            "sms": self.sms.model_dump(mode="json"),
            "renewal": self.renewal.model_dump(mode="json"),
            "texts": dict(self.texts),
            "registration": self.registration.model_dump(mode="json", exclude_none=True),
        }
        if self.retention_days is not None:  # absent when unset: older rows compare equal
            stored["retention_days"] = self.retention_days
        return stored

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any] | None, owner: str = "") -> AgencySettings:
        """The typed settings of a ``settings`` column's value, parsed once per distinct value
        (they change only with ``config apply``; a parse costs some 50 µs, a look-up some 4).
        Shared between callers: not to be changed. ``ConfigError`` names ``owner`` when the
        value is not valid (a database edited by hand)."""
        key = repr(stored)
        found = _PARSED.get(key)
        if found is None:
            try:
                found = cls.model_validate(stored or {})
            except PydanticError as exc:
                raise ConfigError(f"the stored settings of {owner} are not valid: {exc}") from exc
            if len(_PARSED) >= _PARSED_MAX:
                _PARSED.clear()
            _PARSED[key] = found
        return found


_PARSED: dict[str, AgencySettings] = {}
_PARSED_MAX = 256


class AgencyConfig(AgencySettings):
    id: str
    name: str = Field(min_length=1, max_length=200)
    timezone: str = "Europe/Copenhagen"
    language: Literal["da", "en"] = "da"
    country_code: str = "45"
    branches: list[BranchConfig] = Field(default_factory=list)
    integration_users: list[IntegrationUserConfig] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _isil(cls, value: str) -> str:
        return str(_domain(validate_isil, value))

    def settings(self) -> AgencySettings:
        """The sections stored with the agency."""
        return AgencySettings.model_validate(
            {name: getattr(self, name) for name in AgencySettings.model_fields}
        )

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return str(_domain(validate_timezone, value))

    @field_validator("country_code", mode="before")
    @classmethod
    def _cc(cls, value: Any) -> str:
        return str(_domain(validate_country_code, str(value)))

    @model_validator(mode="after")
    def _unique(self) -> AgencyConfig:
        codes = [b.code for b in self.branches]
        if len(codes) != len(set(codes)):
            raise ValueError("branch codes must be unique")
        users = [u.username for u in self.integration_users]
        if len(users) != len(set(users)):
            raise ValueError("integration user names must be unique")
        branches = tuple(Branch(b.code, b.name) for b in self.branches)
        _domain(lambda o: build_form(branches, o), self.registration.overrides())
        return self


class BasicAuth(_Strict):
    type: Literal["basic"]
    username: str
    password: str


class BearerAuth(_Strict):
    type: Literal["bearer"]
    token: str


class HeaderAuth(_Strict):
    type: Literal["header"]
    name: str = Field(pattern=r"^[A-Za-z0-9-]+$")
    value: str


class MtlsAuth(_Strict):
    type: Literal["mtls"]
    cert: str
    key: str
    ca_bundle: str | None = None


class NoAuth(_Strict):
    type: Literal["none"]


SourceAuth = Annotated[
    BasicAuth | BearerAuth | HeaderAuth | MtlsAuth | NoAuth, Field(discriminator="type")
]


# A Koha column name, and a dotted path into a FOLIO user (``customFields.studentId``).
_KOHA_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FOLIO_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class ImportMapping(_Strict):
    """Where an institution's export differs from the format's defaults: the Koha column or the
    FOLIO JSON path (dotted) that gives each value. Unset: the format's default."""

    patron_id: str | None = Field(default=None, min_length=1, max_length=200)
    external_id: str | None = Field(default=None, min_length=1, max_length=200)
    sms_number: str | None = Field(default=None, min_length=1, max_length=200)


class ImportSourceConfig(_Strict):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    agency: str
    url: str
    format: Literal["folio-json", "koha-csv"]
    auth: SourceAuth = Field(default_factory=lambda: NoAuth(type="none"))
    schedule: str | None = None
    deactivate_missing: bool | None = None
    max_deactivate_fraction: float = Field(default=0.1, ge=0, le=1)
    deactivate_after_missing_runs: int = Field(default=1, ge=1, le=365)
    connect_timeout: float = Field(default=10.0, gt=0, le=120)
    read_timeout: float = Field(default=120.0, gt=0, le=3600)
    # How the feed writes dates (Koha: its ``dateformat`` preference); ``auto`` decides per file.
    date_format: Literal["auto", "iso", "us", "metric", "dmydot"] = "auto"
    # The start of the patron ids made for rows that give none (Koha numbers patrons itself).
    patron_id_prefix: str = Field(default="", max_length=16, pattern=r"^[A-Za-z0-9._-]*$")
    mapping: ImportMapping = Field(default_factory=ImportMapping)

    @model_validator(mode="after")
    def _mapping_fits_format(self) -> ImportSourceConfig:
        pattern, what = (
            (_KOHA_COLUMN, "a column name")
            if self.format == "koha-csv"
            else (_FOLIO_PATH, "a dotted JSON path such as customFields.studentId")
        )
        for key in ("patron_id", "external_id", "sms_number"):
            value = getattr(self.mapping, key)
            if value is not None and not pattern.fullmatch(value):
                raise ValueError(f"mapping.{key} {value!r} is not {what} (format {self.format})")
        return self

    @field_validator("agency")
    @classmethod
    def _isil(cls, value: str) -> str:
        return str(_domain(validate_isil, value))

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value, allow_file=True)

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None and not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a cron expression (such as '0 3 * * *')")
        return value


class ConfigFile(_Strict):
    agencies: list[AgencyConfig] = Field(default_factory=list)
    import_sources: list[ImportSourceConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> ConfigFile:
        ids = [a.id for a in self.agencies]
        if len(ids) != len(set(ids)):
            raise ValueError("agency ids must be unique")
        sources = [s.id for s in self.import_sources]
        if len(sources) != len(set(sources)):
            raise ValueError("import source ids must be unique")
        return self
