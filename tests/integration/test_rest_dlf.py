"""The Aleph New Patron API over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote_plus
from xml.etree.ElementTree import canonicalize

import defusedxml.ElementTree as SafeET
import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from patronlink.config.loader import load_config
from patronlink.config.schema import AgencySettings
from patronlink.domain.agency import Agency, Branch
from patronlink.domain.patron import PatronStatus
from patronlink.domain.registration import FIELD_NAMES
from patronlink.services.configure import apply_config
from patronlink.services.secrets import verify_password
from patronlink.settings import Settings
from patronlink.storage import tables
from patronlink.storage.database import Database
from patronlink.web.app import create_app
from tests.conftest import FrozenClock
from tests.support.live_server import live_server

FIXTURES = Path(__file__).parent.parent / "fixtures"
SPEC_GET = (FIXTURES / "aleph_get_example.xml").read_text("utf-8")
SPEC_PUT = (FIXTURES / "aleph_put_body.txt").read_bytes()
SPEC_PUT_REPLY = (FIXTURES / "aleph_put_reply.xml").read_text("utf-8")
SPEC_FORM_TOML = FIXTURES / "registration_spec_form.toml"
A = "DK-761500"
B = "DK-775100"


def canonical(xml: str) -> str:
    return canonicalize(xml, strip_text=True)


def reply(response: httpx.Response) -> tuple[str, str]:
    """(reply-code, reply-text) of an Aleph reply; also checks what every reply shares."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/xml; charset=UTF-8"
    root = SafeET.fromstring(response.content)
    return root.findtext("reply-code") or "", root.findtext("reply-text") or ""


def patron_count(db: Database) -> int:
    with db.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(tables.patrons)).scalar_one()


def with_field(name: str, value: str) -> bytes:
    """The spec's PUT body with one field's value replaced."""
    pattern = rf"<{name}>[^<]*</{name}>|<{name}/>".encode()
    body, count = re.subn(pattern, f"<{name}>{value}</{name}>".encode(), SPEC_PUT)
    assert count == 1
    return body


def without_field(name: str) -> bytes:
    body, count = re.subn(rf"<{name}>[^<]*</{name}>|<{name}/>".encode(), b"", SPEC_PUT)
    assert count == 1
    return body


@contextmanager
def serve(db: Database, settings: Settings, clock: FrozenClock) -> Iterator[httpx.Client]:
    # Many refusals from one address are what these tests send on purpose; the registration
    # throttle that would stop them is tested in test_login_throttle.py.
    relaxed = settings.model_copy(update={"registration_failures_before_throttle": 1_000_000})
    with live_server(create_app(relaxed, db, clock)) as url, httpx.Client(base_url=url) as c:
        yield c


@pytest.fixture
def spec_agency(db: Database, clock: FrozenClock) -> None:
    """DK-761500 configured with the spec's form, from a registration TOML."""
    apply_config(db, load_config(SPEC_FORM_TOML, {}), {}, clock)


@pytest.fixture
def client(
    spec_agency: None, db: Database, settings: Settings, clock: FrozenClock
) -> Iterator[httpx.Client]:
    with serve(db, settings, clock) as c:
        yield c


def add_agency(db: Database, clock: FrozenClock, agency: Agency) -> None:
    with db.transaction() as repos:
        repos.agencies.upsert(agency, AgencySettings(), clock())


# --- GET -----------------------------------------------------------------------------------------


def test_get_is_the_spec_example(client: httpx.Client) -> None:
    response = client.get("/rest-dlf/patron/")
    assert reply(response) == ("0000", "ok")
    assert canonical(response.text) == canonical(SPEC_GET)


@pytest.mark.parametrize(
    "path",
    [
        "/rest-dlf/patron",
        "/rest-dlf/DK-761500/patron/",
        "/rest-dlf/dk-761500/patron",
        "/rest-dlf/761500/patron/",
    ],
)
def test_get_answers_on_every_path_of_the_agency(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert canonical(response.text) == canonical(SPEC_GET)


def test_unconfigured_agency_gets_the_spec_form_with_its_branches(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    branches = (
        Branch("LAW", "Law Library"),
        Branch("MED", "Medicine Library"),
        Branch("WID", "Main Library"),
    )
    add_agency(db, clock, Agency(id=A, name="Horsens", branches=branches))
    with serve(db, settings, clock) as client:
        response = client.get("/rest-dlf/patron/")
    # The spec's example labels MED "MED" under home-library; from branches it is the name.
    expected = SPEC_GET.replace(
        '<home-library-list Code="MED">MED</home-library-list>',
        '<home-library-list Code="MED">Medicine Library</home-library-list>',
    )
    assert expected != SPEC_GET
    assert canonical(response.text) == canonical(expected)


def test_default_agency_setting_picks_among_several(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    add_agency(db, clock, Agency(id=A, name="Horsens", branches=(Branch("HOR", "Horsens"),)))
    add_agency(db, clock, Agency(id=B, name="Aarhus", branches=(Branch("AAR", "Aarhus"),)))
    with serve(db, settings, clock) as without_default:
        code, text = reply(without_default.get("/rest-dlf/patron/"))
        # The agency's own path needs no default.
        aarhus = without_default.get("/rest-dlf/775100/patron/")
    assert code == "0301"
    assert "PATRONLINK_DEFAULT_AGENCY" in text
    assert "/rest-dlf/{agencyId}/patron/" in text
    assert 'Code="AAR"' in aarhus.text

    chosen = settings.model_copy(update={"default_agency": B})
    with serve(db, chosen, clock) as with_default:
        response = with_default.get("/rest-dlf/patron/")
    assert reply(response) == ("0000", "ok")
    assert 'Code="AAR"' in response.text
    assert 'Code="HOR"' not in response.text


@pytest.mark.parametrize("path", ["/rest-dlf/DK-999999/patron/", f"/rest-dlf/{'9' * 40}/patron"])
def test_unknown_agency_is_an_xml_refusal(client: httpx.Client, path: str) -> None:
    code, text = reply(client.get(path))
    assert code == "0301"
    assert "does not exist" in text
    code, _ = reply(client.put(path, content=SPEC_PUT))
    assert code == "0301"


def test_no_agency_at_all_is_an_xml_refusal(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    with serve(db, settings, clock) as client:
        response = client.get("/rest-dlf/patron/")
    assert reply(response) == ("0301", "no agency is configured")


# --- PUT -----------------------------------------------------------------------------------------


def test_spec_put_creates_patron_0044(client: httpx.Client, db: Database) -> None:
    response = client.put(
        "/rest-dlf/patron/",
        content=SPEC_PUT,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert reply(response) == ("0000", "ok")
    assert canonical(response.text) == canonical(SPEC_PUT_REPLY)
    with db.transaction() as repos:
        patron = repos.patrons.get(A, "0044")
    assert patron is not None
    assert patron.name == "Richardson, James the 1st"
    assert patron.status is PatronStatus.ACTIVE  # the TOML says so
    assert patron.address_lines == ("7 Ridgmount Street", "London WC1E 7AE", "United Kingdom")
    assert patron.email == "infouk@exlibrisgroup.com"
    assert patron.want_sms is True
    assert patron.home_branch == "LAW"  # "LAW " in the body: trimmed
    assert patron.phones == ()  # 111222999 is no valid number, kept as written below
    assert patron.extra == {
        "local-sub-library": "LAW",
        "con-lng": "ENG",
        "telephone-1": "111222999",
        "address-type": "01",
        "address-valid-from": "20150101",
        "address-valid-to": "20160712",
        "gender": "M",
    }
    with db.engine.connect() as conn:
        pin_hash = conn.execute(
            select(tables.patrons.c.pin_hash).where(tables.patrons.c.patron_id == "0044")
        ).scalar_one()
    assert pin_hash.startswith("$argon2id$")
    assert verify_password(pin_hash, "0044")


def test_second_put_of_the_same_id_is_already_registered(
    client: httpx.Client, db: Database
) -> None:
    assert reply(client.put("/rest-dlf/patron/", content=SPEC_PUT))[0] == "0000"
    before = patron_count(db)
    response = client.put("/rest-dlf/patron", content=SPEC_PUT)
    assert reply(response) == ("0102", "The patron ID is already registered")
    assert response.text.startswith("<?xml")
    assert SafeET.fromstring(response.content).tag == "put-new-patron"
    assert patron_count(db) == before


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (
            b"post_xml=" + quote_plus(SPEC_PUT[9:].decode()).encode(),
            "application/x-www-form-urlencoded",
        ),
        (SPEC_PUT[9:], "application/xml"),
        (SPEC_PUT[9:], "text/xml; charset=UTF-8"),
        (SPEC_PUT, "text/plain"),
    ],
    ids=["urlencoded", "bare-xml", "text-xml", "raw-as-text"],
)
def test_every_body_shape_registers(
    client: httpx.Client, db: Database, body: bytes, content_type: str
) -> None:
    response = client.put(
        "/rest-dlf/DK-761500/patron/", content=body, headers={"content-type": content_type}
    )
    assert reply(response) == ("0000", "ok")
    with db.transaction() as repos:
        assert repos.patrons.get(A, "0044") is not None


def test_empty_internal_id_gets_a_generated_unique_id(client: httpx.Client, db: Database) -> None:
    body = with_field("internal-id", "")
    ids = set()
    for _ in range(3):
        response = client.put("/rest-dlf/patron/", content=body)
        assert reply(response) == ("0000", "ok")
        root = SafeET.fromstring(response.content)
        new_id = root.findtext("new-patron/new-patron-id")
        assert new_id == root.findtext("new-patron/new-patron-internal-id")
        assert new_id is not None
        assert re.fullmatch(r"[1-9]\d{11}", new_id)  # numeric, internal-id's max_len 12
        ids.add(new_id)
    assert len(ids) == 3
    assert patron_count(db) == 3


def test_unconfigured_agency_registers_pending_with_defaults(
    db: Database, settings: Settings, clock: FrozenClock
) -> None:
    add_agency(db, clock, Agency(id=A, name="Horsens", branches=(Branch("LAW", "Law"),)))
    body = without_field("con-lng").replace(b"<address-type>01</address-type>", b"")
    body = body.replace(b"<telephone-2/>", b"<telephone-2>52 90 39 91</telephone-2>")
    body = body.replace(b"<sms-number/>", b"<sms-number>+45 20112233</sms-number>")
    with serve(db, settings, clock) as client:
        assert reply(client.put("/rest-dlf/patron/", content=body))[0] == "0000"
    with db.transaction() as repos:
        patron = repos.patrons.get(A, "0044")
    assert patron is not None
    assert patron.status is PatronStatus.PENDING
    assert patron.extra["con-lng"] == "ENG"
    assert patron.extra["address-type"] == "01"
    assert patron.phones == ("+4552903991",)
    assert patron.sms_number == "+4520112233"
    with db.transaction() as repos:
        assert [p.patron_id for _, p in repos.patrons.by_number(A, "+4520112233")] == ["0044"]


def test_missing_mandatory_fields_are_named(client: httpx.Client, db: Database) -> None:
    body = with_field("patron-name", "  ").replace(b"<telephone-1>111222999</telephone-1>", b"")
    code, text = reply(client.put("/rest-dlf/patron/", content=body))
    assert code == "0101"
    assert text == "Mandatory parameters are missing: patron-name, telephone-1"
    assert patron_count(db) == 0


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        (with_field("zip", "1234567890"), "0103", ["zip", "9"]),
        (with_field("gender", "X"), "0104", ["gender", "M, F"]),
        (with_field("local-sub-library", "XYZ"), "0104", ["local-sub-library", "LAW, MED, WID"]),
        (with_field("birth-date", "19991301"), "0105", ["birth-date", "YYYYMMDD"]),
        (with_field("address-valid-to", "2016-07-12"), "0103", ["address-valid-to"]),
        (with_field("sms-number", "12"), "0106", ["sms-number"]),
        (
            SPEC_PUT.replace(b"<zip/>", b"<zip/><colour>blue</colour>"),
            "0107",
            ["colour"],
        ),
        (b"post_xml=<get-new-patron><new-patron>", "0201", ["Malformed"]),
        (b"post_xml=", "0201", ["post_xml"]),
        (b"", "0201", []),
        (b"<put-new-patron><new-patron/></put-new-patron>", "0201", ["get-new-patron"]),
        (SPEC_PUT.replace(b"Richardson", b"Richardson\xff"), "0205", ["UTF-8"]),
        (b"<a>" * 200 + b"</a>" * 200, "0204", ["nested"]),
        (b"post_xml=" + b"<a>" * 10_000, "0204", ["nested"]),
        (SPEC_PUT + b" " * 64 * 1024, "0203", ["larger"]),
    ],
    ids=[
        "too-long",
        "not-in-list",
        "branch-not-in-list",
        "bad-date",
        "date-too-long",
        "bad-sms-number",
        "unknown-field",
        "unclosed",
        "empty-post-xml",
        "empty-body",
        "wrong-root",
        "invalid-utf8",
        "deep",
        "very-deep-unclosed",
        "over-64-kib",
    ],
)
def test_each_refusal_has_its_code_and_writes_nothing(
    client: httpx.Client, db: Database, body: bytes, code: str, words: list[str]
) -> None:
    response = client.put("/rest-dlf/patron/", content=body)
    got, text = reply(response)
    assert got == code, text
    assert SafeET.fromstring(response.content).tag == "put-new-patron"
    for word in words:
        assert word in text
    assert patron_count(db) == 0


XXE = (
    b'post_xml=<?xml version="1.0" encoding="UTF-8"?>'
    b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    b"<get-new-patron><new-patron><patron-name>&e;</patron-name><local-sub-library>LAW"
    b"</local-sub-library><telephone-1>52903991</telephone-1></new-patron></get-new-patron>"
)
LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i > 1 else "&lol;" * 10}">'.encode()
        for i in range(1, 10)
    )
    + b"]><get-new-patron><new-patron><patron-name>&lol9;</patron-name>"
    + b"</new-patron></get-new-patron>"
)


@pytest.mark.parametrize(
    "body",
    [
        XXE,
        b"post_xml=" + quote_plus(XXE[9:].decode()).encode(),
        LAUGHS,
        b'<!DOCTYPE get-new-patron SYSTEM "file:///etc/passwd"><get-new-patron/>',
    ],
    ids=["xxe", "xxe-urlencoded", "billion-laughs", "external-dtd"],
)
def test_hostile_xml_is_refused_unexpanded(client: httpx.Client, db: Database, body: bytes) -> None:
    response = client.put("/rest-dlf/patron/", content=body)
    assert reply(response)[0] == "0202"
    assert "root:" not in response.text
    assert "lol" not in response.text
    assert patron_count(db) == 0


def test_body_over_the_server_limit_is_a_4xx(client: httpx.Client, db: Database) -> None:
    response = client.put("/rest-dlf/patron/", content=b" " * (2 * 1024 * 1024))
    assert response.status_code == 413
    assert patron_count(db) == 0


field_value = st.text(st.characters(codec="utf-8"), max_size=40)


def _post_xml(fields: dict[str, str], url_encoded: bool) -> bytes:
    inner = "".join(f"<{k}>{v}</{k}>" for k, v in fields.items())
    xml = f"<get-new-patron><new-patron>{inner}</new-patron></get-new-patron>"
    return ("post_xml=" + (quote_plus(xml) if url_encoded else xml)).encode()


# Forms of the spec's fields with any text (unescaped on purpose: '<' and '&' make bad XML too).
form_body = st.builds(
    _post_xml,
    st.dictionaries(st.sampled_from(FIELD_NAMES), field_value, max_size=10),
    st.booleans(),
)


# The spec's form with some fields changed to any text: many of these register a patron.
SPEC_FIELDS = dict(re.findall(r"<([a-z0-9-]+)>([^<]*)</\1>", SPEC_PUT.decode()))
changed_spec = st.builds(
    lambda changes, encode: _post_xml({**SPEC_FIELDS, **changes}, encode),
    st.dictionaries(st.sampled_from(FIELD_NAMES), field_value, max_size=4),
    st.booleans(),
)


@hypothesis_settings(
    max_examples=80,
    deadline=None,
    # The server and database live for the whole test; examples only add patrons to them.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(body=st.one_of(st.binary(max_size=400), form_body, changed_spec))
def test_generated_bodies_never_give_a_server_error(client: httpx.Client, body: bytes) -> None:
    response = client.put("/rest-dlf/patron/", content=body)
    code, _ = reply(response)
    assert re.fullmatch(r"0[0-3]\d\d", code), response.text
