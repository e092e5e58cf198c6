"""FOLIO's user-import body (``mod-user-import``), read as a stream.

::

    {"users": [{"username": "...", "externalSystemId": "...", "barcode": "...", "active": true,
                "patronGroup": "...", "expirationDate": "2027-06-30T00:00:00.000+0000",
                "personal": {"lastName": "...", "firstName": "...", "email": "...",
                             "phone": "...", "mobilePhone": "...", "preferredContactTypeId": "003",
                             "dateOfBirth": "...", "addresses": [{...}]}}, ...],
     "totalRecords": 1, "deactivateMissingUsers": true}

Users are read one at a time by ijson's C backend (yajl), so a feed of a million users never sits
in memory. The top-level ``deactivateMissingUsers`` can come after the users; reading it costs a
slower event-level pass, so it is read only when the source's configuration does not decide.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
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

USERS = "users.item"
FLAG = "deactivateMissingUsers"
# FOLIO's reference value for "text message" as the preferred contact type.
CONTACT_BY_TEXT = "003"


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


def user_record(number: int, user: Any) -> ImportedRecord | RecordError:
    """One FOLIO user as a record (or the reason it is not one)."""
    try:
        user = _object(user, "the user")
        personal = _object(user.get("personal"), "personal")
        external_id = _text(user.get("externalSystemId"), "externalSystemId")
        if not external_id:
            return RecordError(number, "the user has no externalSystemId")
        active = user.get("active", True)
        if not isinstance(active, bool):
            raise FieldError("active is not true or false")
        username = _text(user.get("username"), "username")
        patron_id = _text(user.get("barcode"), "barcode") or username or external_id
        mobile = _text(personal.get("mobilePhone"), "personal.mobilePhone")
        contact = _text(personal.get("preferredContactTypeId"), "personal.preferredContactTypeId")
        lines, zip_code = _address(personal)
        group = _text(user.get("patronGroup"), "patronGroup")
        extra = (("username", username),) if username else ()
        if group:
            extra = (*extra, ("patron_group", group))
        return ImportedRecord(
            number=number,
            external_id=external_id,
            patron_id=patron_id,
            first_name=_text(personal.get("firstName"), "personal.firstName"),
            last_name=_text(personal.get("lastName"), "personal.lastName"),
            email=_text(personal.get("email"), "personal.email"),
            phones=(_text(personal.get("phone"), "personal.phone"), mobile),
            sms_number=mobile,
            want_sms=contact == CONTACT_BY_TEXT,
            active=active,
            expiry=_text(user.get("expirationDate"), "expirationDate"),
            birth_date=_text(personal.get("dateOfBirth"), "personal.dateOfBirth"),
            address_lines=lines,
            zip=zip_code,
            extra=extra,
        )
    except FieldError as exc:
        external = user.get("externalSystemId") if isinstance(user, dict) else None
        return RecordError(number, str(exc), external if isinstance(external, str) else None)


def pending_user(number: int, user: Any) -> FeedItem:
    """One FOLIO user by its external id and fingerprint, read into a record only when needed.

    A user whose ``externalSystemId`` is not plain text is read at once: ``user_record`` decides
    what becomes of it.
    """
    if type(user) is dict:
        external_id = user.get("externalSystemId")
        if type(external_id) is str and (external_id := external_id.strip()):
            return PendingRecord(number, external_id, fingerprint("folio", user), user, user_record)
    return user_record(number, user)


_Item = TypeVar("_Item")


class FolioJsonReader:
    def __init__(self, stream: IO[bytes], *, read_flag: bool = True) -> None:
        self._stream = stream
        self._read_flag = read_flag
        self.deactivate_missing: bool | None = None
        self.notes: list[str] = []

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
        return self._read(user_record)

    def entries(self) -> Iterator[FeedItem]:
        """Like ``records``, but users with an external id come as ``PendingRecord``."""
        return self._read(pending_user)

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
