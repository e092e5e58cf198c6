"""`patronlink config apply`: the documented example, idempotence, located errors, no partial write.

The example (tests/fixtures/design_example.toml) is a shorter form of docs/configuration.md's.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from patronlink.cli import main
from patronlink.services.secrets import verify_password
from patronlink.settings import Settings
from patronlink.storage import tables
from patronlink.storage.database import Database

EXAMPLE = Path(__file__).parent.parent / "fixtures" / "design_example.toml"
ENV = {
    "HORSENS_SMS_PASSWORD": "gateway-secret-1",
    "HORSENS_SMS_INBOUND_PASSWORD": "inbound-secret-1",
    "UCL_PASSWORD": "ucl-secret-1",
}


def apply(settings: Settings, path: Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    runner = CliRunner()
    result = runner.invoke(
        main,
        ["--database-url", settings.database_url, "config", "apply", str(path)],
        env=ENV if env is None else env,
    )
    return result.exit_code, result.output


def counts(db: Database) -> dict[str, int]:
    with db.engine.connect() as conn:
        return {
            t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in tables.metadata.sorted_tables
        }


def test_design_example_creates_the_agency(db: Database, settings: Settings) -> None:
    code, output = apply(settings, EXAMPLE)
    assert code == 0, output
    assert "agency DK-761500: created" in output
    assert "integration user DK-761500/sms: created" in output
    assert "import source ucl-students: created" in output
    with db.transaction() as repos:
        agency = repos.agencies.get("761500")
        assert agency is not None
        assert agency.name == "Horsens Bibliotek"
        assert [b.code for b in agency.branches] == ["HOR"]
        stored = repos.agencies.settings("DK-761500").stored()
        # Gateway secrets stay references; the value is read when a text is sent.
        assert stored["sms"]["password"] == "${HORSENS_SMS_PASSWORD}"
        assert stored["renewal"] == {
            "sms_enabled": True,
            "loan_days": 30,
            "max_renewals": 3,
            "renew_not_before_days": None,
        }
        hashed = repos.integration_users.password_hash("DK-761500", "sms")
        assert hashed is not None
        assert hashed.startswith("$argon2id$")
        assert verify_password(hashed, "inbound-secret-1")
        source = repos.import_sources.get("ucl-students")
        assert source is not None
        assert source[1]["auth"]["password"] == "${UCL_PASSWORD}"


def test_second_apply_changes_nothing(db: Database, settings: Settings) -> None:
    assert apply(settings, EXAMPLE)[0] == 0
    with db.engine.connect() as conn:
        before = conn.execute(
            select(tables.agencies, tables.integration_users.c.password_hash).join(
                tables.integration_users
            )
        ).all()
    code, output = apply(settings, EXAMPLE)
    assert code == 0
    assert output.strip() == "nothing changed"
    with db.engine.connect() as conn:
        after = conn.execute(
            select(tables.agencies, tables.integration_users.c.password_hash).join(
                tables.integration_users
            )
        ).all()
    assert before == after


def test_changed_password_is_rehashed(db: Database, settings: Settings) -> None:
    assert apply(settings, EXAMPLE)[0] == 0
    code, output = apply(settings, EXAMPLE, {**ENV, "HORSENS_SMS_INBOUND_PASSWORD": "new-one-22"})
    assert code == 0
    assert "integration user DK-761500/sms: password changed" in output
    with db.transaction() as repos:
        assert verify_password(
            repos.integration_users.password_hash("DK-761500", "sms"), "new-one-22"
        )


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    text = EXAMPLE.read_text()
    assert old in text
    path = tmp_path / "broken.toml"
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    ("old", "new", "key", "line"),
    [
        ('driver = "xml"', 'driver = "carrier-pigeon"', "agencies[0].sms.driver", 10),
        ('schedule = "0 3 * * *"', 'schedule = "0 3 * *"', "import_sources[0].schedule", 35),
        ('id = "DK-761500"                 #', "#", "agencies[0].id", 1),
        ("max_attempts = 5", "max_atempts = 5", "agencies[0].sms.max_atempts", 17),
        ('quiet_hours = "21:00-08:00"', 'quiet_hours = "9pm"', "agencies[0].sms.quiet_hours", 18),
        ('agency = "DK-761500"', 'agency = "DK-999999"', "import_sources[0].agency", 31),
        ('timezone = "Europe/Copenhagen"', 'timezone = "Mars/Olympus"', "agencies[0].timezone", 4),
        # TOML's \u0000 reached PostgreSQL, which refused it with a traceback.
        ('name = "Horsens Bibliotek"', 'name = "Horsens\\u0000Bibliotek"', "agencies[0].name", 3),
        ('source = "Horsens Bib"', 'source = "Hors\\u0000"', "agencies[0].sms.source", 16),
    ],
)
def test_bad_file_names_key_and_line_and_writes_nothing(
    db: Database, settings: Settings, tmp_path: Path, old: str, new: str, key: str, line: int
) -> None:
    before = counts(db)
    code, output = apply(settings, _broken(tmp_path, old, new))
    assert code == 2
    assert f"key {key}" in output
    assert f"line {line}" in output
    assert counts(db) == before


def test_missing_environment_variable_is_named(db: Database, settings: Settings) -> None:
    env = {k: v for k, v in ENV.items() if k != "UCL_PASSWORD"}
    code, output = apply(settings, EXAMPLE, env)
    assert code == 2
    assert "UCL_PASSWORD is not set" in output
    assert "import_sources[0].auth.password" in output
    assert counts(db)["agencies"] == 0


def test_toml_syntax_error_has_line(settings: Settings, tmp_path: Path) -> None:
    path = _broken(tmp_path, "max_renewals = 3", "max_renewals = = 3")
    code, output = apply(settings, path)
    assert code == 2
    assert "not valid TOML" in output
    assert "line 23" in output


def test_unreadable_and_non_utf8_files(settings: Settings, tmp_path: Path) -> None:
    code, output = apply(settings, tmp_path / "missing.toml")
    assert code == 2
    assert "cannot read" in output
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'[[agencies]]\nid = "DK-761500"\nname = "Horsens \xf8"\n')
    code, output = apply(settings, bad)
    assert code == 2
    assert "not valid UTF-8" in output
    assert "line 3" in output


@pytest.mark.parametrize(
    ("texts", "message"),
    [('renewd = "x"', "unknown text 'renewd'"), ('renewed = "{titel}"', "unknown placeholder")],
)
def test_reply_text_overrides_are_checked(
    db: Database, settings: Settings, tmp_path: Path, texts: str, message: str
) -> None:
    path = tmp_path / "texts.toml"
    path.write_text(
        '[[agencies]]\nid = "DK-761500"\nname = "Horsens"\n\n[agencies.texts]\n' + texts + "\n"
    )
    code, output = apply(settings, path)
    assert code == 2
    assert message in output
    assert "key agencies[0].texts, line 5" in output  # the table; the message names the text
    assert counts(db)["agencies"] == 0
