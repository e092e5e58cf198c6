"""Daily operations in headless Chromium (issue 18): paging, select all, retry all that match,
and the administrators' audit log. Same browser and site as ``test_staff_ui``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from patronlink.domain.errors import PermanentGatewayError, TemporaryGatewayError
from patronlink.services.clock import system_clock
from patronlink.services.outbox import queue_sms
from patronlink.settings import Settings
from patronlink.storage.database import Database
from patronlink.web.app import create_app
from patronlink.worker.dispatcher import Dispatcher
from tests.conftest import FrozenClock
from tests.e2e.test_staff_ui import Staff, browser  # noqa: F401 - the module's browser fixture
from tests.support.fake_gateway import ScriptedGateway
from tests.support.live_server import live_server
from tests.support.staff_site import ENVIRON, A, add_users, configure


@pytest.fixture
def staff(
    db: Database,
    settings: Settings,
    clock: FrozenClock,
    tmp_path: Path,
    browser: WebDriver,  # noqa: F811
) -> Iterator[Staff]:
    configure(db, clock, tmp_path)
    add_users(db, clock)
    with live_server(create_app(settings, db, system_clock)) as url:
        yield Staff(browser, url)


def fill_error_queue(db: Database, count: int) -> None:
    for i in range(count):
        queue_sms(db, A, "52903991", f"text {i}", system_clock)
    gateway = ScriptedGateway(PermanentGatewayError("Invalid phone number specified.", code="1002"))
    asyncio.run(Dispatcher(db, system_clock, gateway.factory, environ=ENVIRON).run(once=True))


def test_select_all_on_the_page_then_retry_all_that_match(staff: Staff, db: Database) -> None:
    fill_error_queue(db, 117)
    staff.log_in("anna")
    staff.open("/staff/errors")
    assert "1-100 of 117" in staff.text()
    # "Select all on this page" is shown by the script and ticks exactly the page's 100.
    select_all = staff.driver.find_element(By.ID, "select-all")
    assert select_all.is_displayed()
    select_all.click()
    boxes = staff.driver.find_elements(By.CSS_SELECTOR, 'input[name="ids"]')
    assert len(boxes) == 100
    assert all(b.is_selected() for b in boxes)
    staff.click("Retry selected")
    staff.wait_for("100 message(s) queued again.")
    assert "1-17 of 17" in staff.text()

    # The rest through "Retry all N that match", after a confirmation that names N.
    staff.press(staff.driver.find_element(By.ID, "retry-all"))
    assert "17 message(s) on the error queue match this filter" in staff.text()
    staff.click("Retry all 17")
    staff.wait_for("17 message(s) queued again.")
    assert "Nothing found." in staff.text()

    # The administrator sees who did it in the audit log, newest first, paged.
    staff.log_in("root")
    staff.press(staff.driver.find_element(By.LINK_TEXT, "Audit log"))
    assert staff.heading() == "Audit log"
    # 117 retries, the configuration and the three users the site was set up with.
    assert "1-100 of 121" in staff.text()
    first_row = staff.driver.find_element(By.CSS_SELECTOR, "table.audit tbody tr").text
    assert "anna" in first_row
    assert "retried" in first_row
    staff.press(staff.driver.find_element(By.CSS_SELECTOR, 'a[rel="next"]'))
    assert "101-121 of 121" in staff.text()


def test_a_patron_approved_blocked_and_a_token_revoked_in_the_browser(
    staff: Staff, db: Database
) -> None:
    from patronlink.domain.patron import Patron, PatronStatus

    with db.transaction() as repos:
        repos.patrons.add(
            Patron(A, "8001", "Signe Selvtilmeldt", status=PatronStatus.PENDING), system_clock()
        )
    staff.log_in("anna")
    staff.open("/staff/patrons?status=pending")
    assert "1-1 of 1" in staff.text()
    staff.press(staff.driver.find_element(By.LINK_TEXT, "8001"))
    assert staff.driver.find_element(By.ID, "patron-status").text == "awaiting approval"
    staff.press(staff.driver.find_element(By.ID, "patron-approve"))
    staff.wait_for("The patron is now: active.")
    staff.driver.find_element(By.ID, "block-reason").send_keys("lost card")
    staff.press(staff.driver.find_element(By.ID, "patron-block"))
    staff.wait_for("The patron is now: blocked.")
    assert staff.driver.find_element(By.ID, "patron-status").text == "blocked (lost card)"

    # An administrator creates a token, sees it once, and revokes it.
    staff.log_in("root")
    staff.press(staff.driver.find_element(By.LINK_TEXT, "API tokens"))
    staff.driver.find_element(By.ID, "token-name").send_keys("kiosk")
    staff.press(staff.driver.find_element(By.ID, "create-token"))
    token = staff.driver.find_element(By.ID, "new-token").text
    assert token.startswith("plk_")
    staff.open("/staff/tokens")
    assert token not in staff.driver.page_source
    staff.press(staff.driver.find_element(By.XPATH, "//button[@aria-label='Revoke kiosk']"))
    staff.wait_for("Token kiosk is revoked.")
    assert "revoked" in staff.driver.find_element(By.CSS_SELECTOR, "table.tokens tbody tr").text
    # The audit log shows anna's approval and block, with the reason.
    staff.open("/staff/audit?object_kind=patron&object_id=8001")
    log = staff.text()
    assert "patron approved" in log
    assert "patron blocked" in log
    assert "reason: lost card" in log


def test_a_failing_gateway_is_a_banner_on_the_dashboard_until_it_recovers(
    staff: Staff, db: Database
) -> None:
    down = ScriptedGateway(TemporaryGatewayError("HTTP 503", http_status=503))
    for i in range(4):
        queue_sms(db, A, "52903991", f"t{i}", system_clock)
    asyncio.run(Dispatcher(db, system_clock, down.factory, environ=ENVIRON).run(once=True))
    staff.log_in("anna")
    staff.open("/staff")
    banner = staff.driver.find_element(By.ID, f"alert-gateway-{A}")
    assert banner.is_displayed()
    assert "is failing: 4 attempts in the last 15 minutes" in banner.text
    # It recovers: one text goes out (the retries above are due later), and the banner goes.
    queue_sms(db, A, "52903991", "recovered", system_clock)
    asyncio.run(
        Dispatcher(db, system_clock, ScriptedGateway().factory, environ=ENVIRON).run(once=True)
    )
    staff.open("/staff")
    assert not staff.driver.find_elements(By.ID, f"alert-gateway-{A}")


def test_the_api_docs_render_from_the_installed_assets(staff: Staff) -> None:
    # Chromium here reaches no network: Swagger UI renders only from the package's own files.
    staff.driver.get(f"{staff.base}/docs")
    WebDriverWait(staff.driver, 20).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) > 10,
        "Swagger UI never listed the operations",
    )
    paths = staff.driver.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
    assert any("/rest-dlf/patron" in p.text for p in paths)
