"""Self-registration through the Aleph New Patron API: the agency's form, and a patron from it.

The agency is named in the URL, or it is the deployment's default agency, or (with no default
configured) the only agency there is. Secrets of the form are hashed with argon2 before the
write transaction starts, so a slow hash never holds the database's write lock.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from patronlink.domain.agency import Agency
from patronlink.domain.errors import ConfigError, Conflict, NotFound, ValidationError
from patronlink.domain.patron import PatronStatus
from patronlink.domain.registration import RegistrationForm, build_form, to_patron, validate
from patronlink.services.clock import Clock
from patronlink.services.secrets import hash_password
from patronlink.storage.database import Database, Repositories

# A generated id is numeric, as long as the form allows up to this many digits.
GENERATED_ID_DIGITS = 12
GENERATED_ID_ATTEMPTS = 20


@dataclass(frozen=True, slots=True)
class AgencyForm:
    agency: Agency
    form: RegistrationForm
    new_patron_status: PatronStatus


@dataclass(frozen=True, slots=True)
class Registered:
    patron_id: str
    agency_id: str
    status: PatronStatus


def _agency(repos: Repositories, ref: str | None, default_agency: str | None) -> Agency:
    if ref is not None:
        found = repos.agencies.get(ref)
        if found is None:
            raise NotFound(f"agency {ref!r} does not exist")
        return found
    if default_agency:
        found = repos.agencies.get(default_agency)
        if found is None:
            raise NotFound(f"the default agency {default_agency!r} does not exist")
        return found
    every = repos.agencies.list()
    if len(every) == 1:
        return every[0]
    raise NotFound(
        "no default agency: set PATRONLINK_DEFAULT_AGENCY or use /rest-dlf/{agencyId}/patron/"
        if every
        else "no agency is configured"
    )


def _load_form(repos: Repositories, ref: str | None, default_agency: str | None) -> AgencyForm:
    agency = _agency(repos, ref, default_agency)
    config = repos.agencies.settings(agency.id).registration
    try:
        form = build_form(agency.branches, config.overrides())
    except ValidationError as exc:
        # Only a database edited by hand (or branches changed behind the form's back) gets here;
        # `config apply` refuses such a form.
        raise ConfigError(f"the registration form of {agency.id} is not valid: {exc}") from exc
    return AgencyForm(agency, form, PatronStatus(config.new_patron_status))


def agency_form(db: Database, agency_ref: str | None, default_agency: str | None) -> AgencyForm:
    """The form of the agency named by ``agency_ref``, or of the default agency when None.

    Raises ``NotFound`` when there is no such agency (or no default to fall back on) and
    ``ConfigError`` when the stored form is inconsistent.
    """
    with db.transaction() as repos:
        return _load_form(repos, agency_ref, default_agency)


def _generated_id(max_len: int | None) -> str:
    digits = min(max_len or GENERATED_ID_DIGITS, GENERATED_ID_DIGITS)
    low = 10 ** (digits - 1)
    return str(low + secrets.randbelow(9 * low))


def register(
    db: Database,
    agency_ref: str | None,
    default_agency: str | None,
    raw: Mapping[str, str],
    clock: Clock,
) -> Registered:
    """Create a patron from a submitted form (field name -> text, as the client sent it).

    Raises ``RegistrationRefused`` for a form that breaks the agency's rules and ``Conflict`` when
    the given internal id is taken; nothing is written then. An empty internal id gets a random
    numeric id, unique in the agency (tried again on a collision).
    """
    loaded = agency_form(db, agency_ref, default_agency)
    agency = loaded.agency
    submission = validate(loaded.form, raw, agency.country_code)
    hashed = {name: hash_password(value) for name, value in submission.secrets().items()}
    pin_hash = hashed.pop("internal-id-verification", None)
    id_field = loaded.form.get("internal-id")
    wanted = submission.internal_id
    attempts = 1 if wanted else GENERATED_ID_ATTEMPTS
    with db.transaction() as repos:
        for attempt in range(attempts):
            patron_id = wanted or _generated_id(id_field.max_len if id_field else None)
            patron = to_patron(
                submission,
                agency_id=agency.id,
                country_code=agency.country_code,
                patron_id=patron_id,
                status=loaded.new_patron_status,
                secret_hashes=hashed,
            )
            try:
                repos.patrons.add(patron, clock(), pin_hash=pin_hash)
            except Conflict:
                if wanted or attempt == attempts - 1:
                    raise
                continue
            return Registered(patron.patron_id, agency.id, patron.status)
    raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover
