"""`[agencies.registration]` in `patronlink config apply`: stored, idempotent, errors located."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from patronlink.cli import main
from patronlink.settings import Settings
from patronlink.storage import tables
from patronlink.storage.database import Database

SPEC_FORM = Path(__file__).parent.parent / "fixtures" / "registration_spec_form.toml"

FULL = """\
[[agencies]]
id = "DK-775100"
name = "Aarhus"
branches = [{ code = "HOV", name = "Hovedbiblioteket" }]

[agencies.registration]
new_patron_status = "pending"

[agencies.registration.fields.con-lng]
usage = "Mandatory"
values = [
  { code = "DAN", label = "Dansk", default = true },
  { code = "ENG", label = "English" },
]

[agencies.registration.fields.gender]
usage = "Mandatory"

[agencies.registration.fields.address-valid-from]
default = "20260101"

[agencies.registration.fields.note-1]
max_len = 500
"""


def apply(settings: Settings, path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(
        main, ["--database-url", settings.database_url, "config", "apply", str(path)], env={}
    )
    return result.exit_code, result.output


def agency_count(db: Database) -> int:
    with db.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(tables.agencies)).scalar_one()


def test_registration_section_is_stored_and_reapplied_unchanged(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "aarhus.toml"
    path.write_text(FULL)
    code, output = apply(settings, path)
    assert code == 0, output
    with db.transaction() as repos:
        stored = repos.agencies.settings("DK-775100").stored()["registration"]
    assert stored == {
        "new_patron_status": "pending",
        "fields": {
            "con-lng": {
                "usage": "Mandatory",
                "values": [
                    {"code": "DAN", "label": "Dansk", "default": True},
                    {"code": "ENG", "label": "English", "default": False},
                ],
            },
            "gender": {"usage": "Mandatory"},
            "address-valid-from": {"default": "20260101"},
            "note-1": {"max_len": 500},
        },
    }
    assert apply(settings, path) == (0, "nothing changed\n")


def test_spec_form_fixture_applies(db: Database, settings: Settings) -> None:
    code, output = apply(settings, SPEC_FORM)
    assert code == 0, output
    assert "agency DK-761500: created" in output


def test_agency_without_registration_section_stores_the_defaults(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "plain.toml"
    path.write_text('[[agencies]]\nid = "DK-775100"\nname = "Aarhus"\n')
    assert apply(settings, path)[0] == 0
    with db.transaction() as repos:
        stored = repos.agencies.settings("DK-775100").stored()["registration"]
    assert stored == {"new_patron_status": "pending", "fields": {}}


@pytest.mark.parametrize(
    ("old", "new", "key", "message"),
    [
        (
            "max_len = 500",
            "maxlen = 500",
            "agencies[0].registration.fields.note-1.maxlen",
            "unknown key 'maxlen'",
        ),
        (
            "[agencies.registration.fields.gender]",
            "[agencies.registration.fields.colour]",
            "agencies[0].registration.fields",
            "unknown registration field 'colour'",
        ),
        (
            'usage = "Mandatory"\nvalues',
            'usage = "Required"\nvalues',
            "agencies[0].registration.fields.con-lng.usage",
            "'Mandatory' or 'Optional'",
        ),
        (
            '"English" }',
            '"English", default = true }',
            "agencies[0]",
            "con-lng: more than one value is the default",
        ),
        (
            'default = "20260101"',
            'default = "2026-01-01"',
            "agencies[0]",
            "address-valid-from: '2026-01-01' is longer than max_len 8",
        ),
        (
            "max_len = 500",
            "max_len = 5000",
            "agencies[0]",
            "note-1: max_len is at most 2000",
        ),
        (
            'new_patron_status = "pending"',
            'new_patron_status = "deleted"',
            "agencies[0].registration.new_patron_status",
            "'active' or 'pending'",
        ),
    ],
)
def test_bad_registration_section_names_key_and_writes_nothing(
    db: Database, settings: Settings, tmp_path: Path, old: str, new: str, key: str, message: str
) -> None:
    assert old in FULL
    path = tmp_path / "bad.toml"
    path.write_text(FULL.replace(old, new, 1))
    code, output = apply(settings, path)
    assert code == 2, output
    assert f"key {key}" in output
    assert message in output
    assert agency_count(db) == 0
