"""The demo agency: a library with patrons, items and loans to try every feature on.

Idempotent: running it again leaves existing demo rows as they are.
"""

from __future__ import annotations

import datetime as dt

from patronlink.config.schema import AgencyConfig
from patronlink.domain.agency import Agency, Branch, Language
from patronlink.domain.circulation import new_item
from patronlink.domain.patron import new_patron
from patronlink.services.clock import Clock
from patronlink.services.configure import agency_settings
from patronlink.services.secrets import hash_password
from patronlink.storage.database import Database

DEMO_AGENCY = "DK-761500"
DEMO_INBOUND_USER = "sms"
DEMO_INBOUND_PASSWORD = "demo-inbound-password"  # noqa: S105 - the demo's published password

_PATRONS = [
    # patron id, name, phone, sms number
    ("1001", "Karen Jensen", "52 90 39 91", None),
    ("1002", "Oskar Jensen", None, "52903991"),  # Karen's son: shares her number
    ("1003", "Mette Hansen", "+45 20 11 22 33", None),
]
_ITEMS = [
    ("5010001", "Kongens Fald"),
    ("5010002", "Ternet Ninja"),
    ("5010003", "Den lille prins"),
    ("5010004", "Harry Potter og De Vises Sten"),
    ("5010005", "Smilla's Sense of Snow"),
]
_LOANS = [
    ("1001", "5010001", 10),
    ("1001", "5010002", 3),
    ("1002", "5010004", 20),
    ("1003", "5010005", 5),
]


def load_demo(db: Database, clock: Clock) -> list[str]:
    """Create what is missing of the demo; returns one line per thing created."""
    now = clock()
    created: list[str] = []
    config = AgencyConfig.model_validate(
        {
            "id": DEMO_AGENCY,
            "name": "Horsens Bibliotek (demo)",
            "timezone": "Europe/Copenhagen",
            "language": "da",
            "country_code": "45",
            "branches": [
                {"code": "HOR", "name": "Hovedbiblioteket"},
                {"code": "BRA", "name": "Brædstrup Bibliotek"},
            ],
            "sms": {"driver": "console", "max_attempts": 5},
            "renewal": {"sms_enabled": True, "loan_days": 30, "max_renewals": 3},
        }
    )
    with db.transaction() as repos:
        agency = repos.agencies.get(DEMO_AGENCY)
        if agency is None:
            agency = Agency(
                id=config.id,
                name=config.name,
                timezone=config.timezone,
                language=Language(config.language),
                country_code=config.country_code,
                branches=tuple(Branch(b.code, b.name) for b in config.branches),
            )
            repos.agencies.upsert(agency, agency_settings(config), now)
            created.append(f"agency {DEMO_AGENCY}")
        if repos.integration_users.password_hash(DEMO_AGENCY, DEMO_INBOUND_USER) is None:
            repos.integration_users.set_password_hash(
                DEMO_AGENCY, DEMO_INBOUND_USER, hash_password(DEMO_INBOUND_PASSWORD)
            )
            created.append(f"integration user {DEMO_INBOUND_USER}")
        pks: dict[str, int] = {}
        for patron_id, name, phone, sms in _PATRONS:
            found = repos.patrons.get_with_pk(DEMO_AGENCY, patron_id)
            if found is None:
                patron = new_patron(
                    agency_id=DEMO_AGENCY,
                    country_code="45",
                    patron_id=patron_id,
                    name=name,
                    phones=[phone] if phone else [],
                    sms_number=sms,
                    want_sms=True,
                    source="demo",
                    home_branch="HOR",
                )
                pks[patron_id] = repos.patrons.add(patron, now)
                created.append(f"patron {patron_id} {name}")
            else:
                pks[patron_id] = found[0]
        items: dict[str, int] = {}
        for number, title in _ITEMS:
            found_item = repos.circulation.item(DEMO_AGENCY, number)
            if found_item is None:
                items[number] = repos.circulation.add_item(
                    new_item(agency_id=DEMO_AGENCY, item_number=number, title=title)
                )
                created.append(f"item {number} {title}")
            else:
                items[number] = found_item[0]
        today = now.astimezone(agency.zone).date()
        for patron_id, number, days_left in _LOANS:
            if repos.circulation.active_loan_of_item(DEMO_AGENCY, number) is None:
                repos.circulation.checkout(
                    DEMO_AGENCY,
                    pks[patron_id],
                    items[number],
                    now,
                    today + dt.timedelta(days=days_left),
                )
                created.append(f"loan of {number} to {patron_id}")
        # Someone else waits for "Ternet Ninja", so Karen cannot renew it.
        if not repos.circulation.reservations_for_items(DEMO_AGENCY, ["5010002"]):
            repos.circulation.reserve(DEMO_AGENCY, items["5010002"], pks["1003"], now)
            created.append("reservation of 5010002 by 1003")
    return created
