"""FOLIO's user-import body (``mod-user-import``), read as a stream.

::

    {"users": [{"username": "...", "externalSystemId": "...", "barcode": "...", "active": true,
                "patronGroup": "...", "expirationDate": "2027-06-30T00:00:00.000+0000",
                "personal": {"lastName": "...", "firstName": "...", "email": "...",
                             "phone": "...", "mobilePhone": "...", "preferredContactTypeId": "003",
                             "dateOfBirth": "...", "addresses": [{...}]}}, ...],
     "totalRecords": 1, "deactivateMissingUsers": true}

Read as FOLIO's own samples write it (``mod-user-import``'s ``ramls/examples`` and test
resources): ``preferredContactTypeId`` as a name (``mail``, ``email``, ``text``, ``phone``,
``mobile``) or its id (``001``..``005``); ``preferredFirstName`` used for the name when given;
``customFields``, ``departments``, ``requestPreference``, ``enrollmentDate`` and
``personal.pronouns`` kept in the patron's ``extra``; with ``updateOnlyPresentFields: true`` the
fields a user does not carry keep their stored values.

Users are read one at a time by ijson's C backend (yajl), so a feed of a million users never sits
in memory. The top-level ``deactivateMissingUsers`` can come after the users; reading it costs a
slower event-level pass, so it is read only when the source's configuration does not decide.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from functools import partial
from typing import IO, Any, TypeVar

import ijson

from patronlink.domain.errors import SourceFormatError
from patronlink.domain.import_records import (
    FeedItem,
    ImportedRecord,
    PendingRecord,
    RecordError,
    fingerprint,
)
from patronlink.sources.base import ReaderOptions

USERS = "users.item"
FLAG = "deactivateMissingUsers"
PRESENT_ONLY = "updateOnlyPresentFields"
# ``"updateOnlyPresentFields": true`` in a body's bytes (see ``present_only``).
_PRESENT_ONLY = re.compile(rb'"updateOnlyPresentFields"\s*:\s*true')
# FOLIO's preferred contact types (its reference data, mod-users ``addresstypes``' sibling
# ``contact types``): by id and by name. Only a text message makes an SMS patron.
CONTACT_TYPES = {"001": "mail", "002": "email", "003": "text", "004": "phone", "005": "mobile"}
CONTACT_NAMES = frozenset(CONTACT_TYPES.values())
CONTACT_BY_TEXT = "text"
# The patron fields each part of a FOLIO user gives: what ``updateOnlyPresentFields`` keeps
# when the user lacks the part.
_USER_PARTS = (("active", "status"), ("expirationDate", "expiry_date"))
_PERSONAL_PARTS = (
    ("email", "email"),
    ("mobilePhone", "sms_number"),
    ("preferredContactTypeId", "want_sms"),
    ("addresses", "address_lines"),
    ("addresses", "zip"),
)


def present_only(body: bytes) -> bool:
    """Whether these bytes of a body set ``updateOnlyPresentFields`` to true."""
    return _PRESENT_ONLY.search(body) is not None


class FieldError(ValueError):
    """A field of a user has the wrong JSON type."""


def _text(value: Any, name: str) -> str:
    # Text first, by exact type: nearly every field of nearly every user is a string, and this
    # runs sixteen times a user.
    if type(value) is str:
        return value.strip()
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        raise FieldError(f"{name} is not text")
    if isinstance(value, int | Decimal):
        return str(value)
    raise FieldError(f"{name} is not text")


def _object(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FieldError(f"{name} is not an object")
    return value


def _address(personal: dict[str, Any]) -> tuple[tuple[str, ...], str]:
    addresses = personal.get("addresses") or []
    if not isinstance(addresses, list):
        raise FieldError("personal.addresses is not a list")
    chosen: dict[str, Any] = {}
    for i, value in enumerate(addresses):
        # The field's name is only formatted for the error (this runs for every user).
        entry = value if type(value) is dict else _object(value, f"personal.addresses[{i}]")
        if not chosen or entry.get("primaryAddress") is True:
            chosen = entry
        if entry.get("primaryAddress") is True:
            break
    get = chosen.get
    lines = (
        _text(get("addressLine1"), "address addressLine1"),
        _text(get("addressLine2"), "address addressLine2"),
        _text(get("city"), "address city"),
    )
    return lines, _text(get("postalCode"), "address postalCode")


def _path(user: dict[str, Any], path: str) -> Any:
    """The value at a dotted path (``customFields.studentId``), None when a part is missing."""
    value: Any = user
    for key in path.split("."):
        if type(value) is not dict:
            return None
        value = value.get(key)
    return value


def _contact(value: str) -> str:
    """A preferred contact type by name, whether the feed gave its id or its name."""
    found = CONTACT_TYPES.get(value)
    if found is not None:
        return found
    name = value.casefold()
    return name if name in CONTACT_NAMES else value


def _flat(value: Any) -> str:
    """A JSON value of ``extra`` as text: lists joined by commas, the rest as written."""
    if type(value) is list:
        return ",".join(_flat(v) for v in value)
    if type(value) is bool:
        return "true" if value else "false"
    return "" if value is None else str(value).strip()


def _kept(user: dict[str, Any], personal: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """What the patron keeps of FOLIO's own fields in ``extra`` (rare ones; read in one pass)."""
    found: list[tuple[str, str]] = []
    custom = user.get("customFields")
    if type(custom) is dict:
        found.extend((f"custom.{k}", _flat(v)) for k, v in custom.items())
    for key, name in (("departments", "departments"), ("enrollmentDate", "enrollment_date")):
        if key in user:
            found.append((name, _flat(user[key])))
    preference = user.get("requestPreference")
    if type(preference) is dict:
        found.extend((f"request_preference.{k}", _flat(v)) for k, v in preference.items())
    if "pronouns" in personal:
        found.append(("pronouns", _flat(personal["pronouns"])))
    return tuple((k, v) for k, v in found if v)


_NOTHING: frozenset[str] = frozenset()


def _absent(user: dict[str, Any], personal: dict[str, Any]) -> frozenset[str]:
    """The patron fields this user does not carry (for ``updateOnlyPresentFields``)."""
    if (
        # Most users carry them all: a chain of lookups, no set (this runs for every user read).
        "active" in user
        and "expirationDate" in user
        and "email" in personal
        and "mobilePhone" in personal
        and "preferredContactTypeId" in personal
        and "addresses" in personal
    ):
        return _NOTHING
    absent = {field for key, field in _USER_PARTS if key not in user}
    absent.update(field for key, field in _PERSONAL_PARTS if key not in personal)
    if "phone" not in personal and "mobilePhone" not in personal:
        absent.update(("phones", "phones_unparsed"))
    return frozenset(absent)


_DEFAULTS = ReaderOptions()
# The kind of the fingerprints of users read with the default options. Its version changes when
# a user reads differently (this one: contact types by name, ``preferredFirstName``, ``extra``):
# the first run after an upgrade then compares every patron field by field, once.
KIND = "folio-2"


def user_record(
    number: int, user: Any, options: ReaderOptions = _DEFAULTS
) -> ImportedRecord | RecordError:
    """One FOLIO user as a record (or the reason it is not one)."""
    try:
        user = _object(user, "the user")
        personal = _object(user.get("personal"), "personal")
        id_path = options.external_id
        if id_path is None:
            id_path = "externalSystemId"
            external_id = _text(user.get(id_path), id_path)
        else:
            external_id = _text(_path(user, id_path), id_path)
        if not external_id:
            return RecordError(number, f"the user has no {id_path}", None, id_path)
        active = user.get("active", True)
        if not isinstance(active, bool):
            raise FieldError("active is not true or false")
        username = _text(user.get("username"), "username")
        if options.patron_id is not None:
            patron_id = _text(_path(user, options.patron_id), options.patron_id)
        else:
            patron_id = _text(user.get("barcode"), "barcode") or username or external_id
        mobile = _text(personal.get("mobilePhone"), "personal.mobilePhone")
        sms = mobile
        if options.sms_number is not None:
            sms = _text(_path(user, options.sms_number), options.sms_number)
        contact = _contact(
            _text(personal.get("preferredContactTypeId"), "personal.preferredContactTypeId")
        )
        lines, zip_code = _address(personal)
        group = _text(user.get("patronGroup"), "patronGroup")
        extra = (("username", username),) if username else ()
        if group:
            extra = (*extra, ("patron_group", group))
        if (
            "customFields" in user
            or "departments" in user
            or "enrollmentDate" in user
            or "requestPreference" in user
            or "pronouns" in personal
        ):
            extra = (*extra, *_kept(user, personal))
        first = _text(personal.get("preferredFirstName"), "personal.preferredFirstName")
        return ImportedRecord(
            number=number,
            external_id=external_id,
            patron_id=patron_id,
            first_name=first or _text(personal.get("firstName"), "personal.firstName"),
            last_name=_text(personal.get("lastName"), "personal.lastName"),
            email=_text(personal.get("email"), "personal.email"),
            phones=(_text(personal.get("phone"), "personal.phone"), mobile),
            sms_number=sms,
            want_sms=contact == CONTACT_BY_TEXT,
            active=active,
            expiry=_text(user.get("expirationDate"), "expirationDate"),
            birth_date=_text(personal.get("dateOfBirth"), "personal.dateOfBirth"),
            address_lines=lines,
            zip=zip_code,
            extra=extra,
            # Always: whether the feed asks to keep them may only be known after its users.
            absent=_absent(user, personal),
        )
    except FieldError as exc:
        external = user.get("externalSystemId") if isinstance(user, dict) else None
        return RecordError(number, str(exc), external if isinstance(external, str) else None)


def _kind(options: ReaderOptions) -> str:
    """The fingerprints' kind: the options that change what a user reads as are part of it, so
    that a changed mapping reads every user again."""
    # Neither the date format (FOLIO's are ISO) nor updateOnlyPresentFields (which decides
    # how a record is applied, not what it says) changes what a user reads as.
    if options.patron_id is options.external_id is options.sms_number is None:
        return KIND
    wire = repr(sorted(options.wire().items())).encode()
    return KIND + ":" + hashlib.blake2b(wire, digest_size=4).hexdigest()  # 16 bytes at most


def pending_user(
    number: int, user: Any, options: ReaderOptions = _DEFAULTS, kind: str = KIND
) -> FeedItem:
    """One FOLIO user by its external id and fingerprint, read into a record only when needed.

    A user whose external id is not plain text is read at once: ``user_record`` decides what
    becomes of it.
    """
    if type(user) is dict:
        if options.external_id is None:
            external_id = user.get("externalSystemId")
        else:
            external_id = _path(user, options.external_id)
        if type(external_id) is str and (external_id := external_id.strip()):
            reader = user_record if kind == KIND else partial(user_record, options=options)
            return PendingRecord(number, external_id, fingerprint(kind, user), user, reader)
    return user_record(number, user, options)


_Item = TypeVar("_Item")


class FolioJsonReader:
    def __init__(
        self, stream: IO[bytes], *, read_flag: bool = True, options: ReaderOptions | None = None
    ) -> None:
        self._stream = stream
        self._read_flag = read_flag
        self._options = options or ReaderOptions()
        self._kind = _kind(self._options)
        self.deactivate_missing: bool | None = None
        self.notes: list[str] = []
        # Read in-process, the whole body was in the bytes the options were judged from.
        self.present_only = self._options.update_only_present

    def _users(self) -> Iterator[Any]:
        if not self._read_flag:
            yield from ijson.items(self._stream, USERS, buf_size=256 * 1024)
            return

        def watch(events: Iterator[tuple[str, str, Any]]) -> Iterator[tuple[str, str, Any]]:
            for event in events:
                if event[0] == FLAG and event[1] == "boolean":
                    self.deactivate_missing = bool(event[2])
                yield event

        yield from ijson.items(watch(ijson.parse(self._stream, buf_size=256 * 1024)), USERS)

    def records(self) -> Iterator[ImportedRecord | RecordError]:
        if self._kind == KIND:
            return self._read(user_record)
        return self._read(partial(user_record, options=self._options))

    def entries(self) -> Iterator[FeedItem]:
        """Like ``records``, but users with an external id come as ``PendingRecord``."""
        if self._kind == KIND:
            return self._read(pending_user)
        return self._read(partial(pending_user, options=self._options, kind=self._kind))

    def _read(self, item: Callable[[int, Any], _Item]) -> Iterator[_Item]:
        number = 0
        try:
            for number, user in enumerate(self._users(), start=1):
                yield item(number, user)
        except ijson.JSONError as exc:
            where = f"after user {number}" if number else "before the first user"
            raise SourceFormatError(
                f"the body is not complete FOLIO JSON ({where}): {exc}"
            ) from exc
        except (UnicodeDecodeError, ValueError) as exc:
            raise SourceFormatError(f"the body is not FOLIO JSON: {exc}") from exc
