"""The staff UI's pure parts: the dictionary, secret masking and the session cookie."""

from __future__ import annotations

import re
from importlib.resources import files

import pytest
from starlette.responses import Response

from patronlink.domain.import_runs import RunStatus
from patronlink.domain.outbox import MessageStatus
from patronlink.web.staff.i18n import TEXTS, from_accept_language, translator
from patronlink.web.staff.masking import HIDDEN, masked_settings
from patronlink.web.staff.session import COOKIE, Session, SessionCodec


def test_every_text_has_danish_and_english() -> None:
    for key, (da, en) in TEXTS.items():
        assert da.strip(), key
        assert en.strip(), key
        assert re.findall(r"\{\w+\}", da) == re.findall(r"\{\w+\}", en), key


def test_every_key_the_templates_use_exists() -> None:
    folder = files("patronlink.web").joinpath("templates/staff")
    used: set[str] = set()
    for template in folder.iterdir():
        used |= set(re.findall(r"""t\(\s*["']([a-z0-9_]+)["']\s*[,)]""", template.read_text()))
    assert used
    assert used - set(TEXTS) == set()
    # Keys built from a value: t("status_" ~ message.status), t("run_status_" ~ run.status).
    assert {f"status_{s.value}" for s in MessageStatus} <= set(TEXTS)
    assert {f"run_status_{s.value}" for s in RunStatus} <= set(TEXTS)


@pytest.mark.parametrize(
    ("header", "language"),
    [("en-GB,en;q=0.9", "en"), ("da-DK", "da"), ("de-DE,en;q=0.5", "en"), ("", "da"), (None, "da")],
)
def test_language_from_the_browser(header: str | None, language: str) -> None:
    assert from_accept_language(header) == language


def test_translator_fills_placeholders() -> None:
    assert translator("da")("message_n", id=7) == "Besked 7"
    assert translator("en")("message_n", id=7) == "Message 7"
    assert translator("en")("no_such_key") == "no_such_key"


def test_masking_hides_secrets_and_names_their_variables() -> None:
    sections = masked_settings(
        {
            "sms": {"driver": "xml", "username": "u1", "password": "${SMS_PASSWORD}"},
            "auth": {"type": "basic", "password": "plain-secret", "token": "t0k"},
            "url": "https://cicero:hunter2@example.org/patrons.json",
            "registration": {"shipping": "yes"},
        }
    )
    sms = {s.key: s for s in sections["sms"]}
    assert sms["username"].value == "u1"
    assert (sms["password"].value, sms["password"].from_env) == (HIDDEN, "SMS_PASSWORD")
    auth = {s.key: s for s in sections["auth"]}
    assert (auth["password"].value, auth["password"].from_env) == (HIDDEN, None)
    assert auth["token"].secret
    url = sections["general"][0].value
    assert "hunter2" not in url
    assert "cicero" not in url
    assert url.endswith("@example.org/patrons.json")
    assert not sections["registration"][0].secret  # "shipping" contains "pin" but is no PIN


def _cookie_value(codec: SessionCodec, session: Session) -> str:
    response = Response()
    codec.write(response, session)
    header = response.headers["set-cookie"]
    assert header.startswith(f"{COOKIE}=")
    return header.split(";")[0].split("=", 1)[1]


def test_session_round_trip_and_forgery() -> None:
    codec = SessionCodec("s" * 40, max_age_seconds=3600, secure=False)
    session = Session(language="en", user_id=7, notice="done")
    value = _cookie_value(codec, session)
    read = codec.read(value)
    # The signed cookie is the session before login: it never carries a user (issue 13; a
    # signed-in session lives in the database under an opaque id).
    assert (read.user_id, read.language, read.csrf, read.notice) == (
        None,
        "en",
        session.csrf,
        "done",
    )
    assert codec.read("s." + "x" * 43).user_id is None  # a server-side id is not read here
    assert codec.read(value[:-3] + "abc").user_id is None
    other = SessionCodec("o" * 40, max_age_seconds=3600, secure=False)
    assert other.read(value).user_id is None  # signed with another key
    assert codec.read("garbage").user_id is None


def test_login_and_logout_change_the_csrf_token() -> None:
    session = Session()
    before = session.csrf
    session.sign_in(3)
    assert session.csrf != before
    assert session.csrf_matches(session.csrf)
    assert not session.csrf_matches(before)
    assert not session.csrf_matches(None)
    during = session.csrf
    session.sign_out()
    assert session.user_id is None
    assert session.csrf != during
