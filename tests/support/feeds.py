"""Feeds in the formats patronlink imports, for tests and benchmarks."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any


def folio_user(i: int, *, variant: int = 0, **changes: Any) -> dict[str, Any]:
    """FOLIO user number ``i``; ``variant`` changes the e-mail address (a changed record)."""
    user: dict[str, Any] = {
        "username": f"user{i}",
        "externalSystemId": f"ext-{i:07d}",
        "barcode": f"{1000000 + i}",
        "active": True,
        "patronGroup": "student",
        "expirationDate": "2027-06-30T00:00:00.000+0000",
        "personal": {
            "lastName": f"Jensen{i}",
            "firstName": "Karen",
            "email": f"user{i}{'.v' + str(variant) if variant else ''}@example.org",
            "phone": f"28{i % 1000000:06d}" if i % 3 == 0 else "",
            "mobilePhone": f"+45 26{i % 1000000:06d}",
            "preferredContactTypeId": "003",
            "addresses": [
                {
                    "addressLine1": f"Vejen {i}",
                    "city": "Horsens",
                    "postalCode": "8700",
                    "primaryAddress": True,
                }
            ],
        },
    }
    user.update(changes)
    return user


def folio_body(users: list[dict[str, Any]], **top: Any) -> bytes:
    return json.dumps({"users": users, "totalRecords": len(users), **top}).encode()


def folio_stream(
    count: int, *, changed_every: int = 0, variant: int = 1, chunk: int = 1 << 18
) -> Iterator[bytes]:
    """A FOLIO body of ``count`` users produced in chunks, never whole in memory.

    With ``changed_every`` = 10, every tenth user has a changed e-mail address.
    """
    buffer = io.StringIO()
    buffer.write('{"users": [')
    for i in range(count):
        v = variant if changed_every and i % changed_every == 0 else 0
        buffer.write(("," if i else "") + json.dumps(folio_user(i, variant=v)))
        if buffer.tell() >= chunk:
            yield buffer.getvalue().encode()
            buffer = io.StringIO()
    buffer.write(f'], "totalRecords": {count}, "deactivateMissingUsers": true}}')
    yield buffer.getvalue().encode()


KOHA_HEADER = [
    "cardnumber", "surname", "firstname", "email", "phone", "mobile", "smsalertnumber",
    "branchcode", "categorycode", "dateexpiry", "userid", "address", "address2", "city", "zipcode",
]  # fmt: skip


def koha_row(i: int, **changes: str) -> dict[str, str]:
    row = {
        "cardnumber": f"{2000000 + i}",
        "surname": f"Hansen{i}",
        "firstname": "Mette",
        "email": f"m{i}@example.org",
        "phone": "",
        "mobile": f"26{i % 1000000:06d}",
        "smsalertnumber": f"26{i % 1000000:06d}",
        "branchcode": "HOR",
        "categorycode": "ST",
        "dateexpiry": "2027-01-31",
        "userid": f"mette{i}",
        "address": f"Gaden {i}",
        "address2": "",
        "city": "Horsens",
        "zipcode": "8700",
    }
    row.update(changes)
    return row


def koha_body(rows: list[dict[str, str]], header: list[str] | None = None) -> bytes:
    out = io.StringIO()
    names = header or KOHA_HEADER
    writer = csv.DictWriter(out, fieldnames=names, extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return out.getvalue().encode()
