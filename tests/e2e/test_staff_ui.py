"""The staff UI in headless Chromium (Debian's chromium + chromium-driver, driven by Selenium).

A real uvicorn server, a real XML gateway test server and the real worker: a text the gateway
refuses with 1002 lands on the error queue, staff retry it in the browser, the worker sends it,
and the page shows it sent. Without /usr/bin/chromium the tests are skipped, except in CI.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from patronlink.services.clock import system_clock
from patronlink.services.outbox import queue_sms
from patronlink.settings import Settings
from patronlink.storage.database import Database
from patronlink.web.app import create_app
from patronlink.worker.runner import run_worker
from tests.conftest import FrozenClock
from tests.support.feeds import folio_body, folio_user
from tests.support.gateway_servers import XmlGatewayServer
from tests.support.live_server import live_server
from tests.support.staff_site import ENVIRON, PASSWORD, A, add_users, configure

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI must run the browser tests: install chromium and chromium-driver")
        pytest.skip("needs Debian's chromium and chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        "--lang=en-GB",
    ):
        options.add_argument(arg)
    # The driver path is given, so Selenium Manager never looks for (or downloads) one.
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


class Staff:
    """The person at the browser."""

    def __init__(self, driver: WebDriver, base: str) -> None:
        self.driver = driver
        self.base = base

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)

    def heading(self) -> str:
        return self.driver.find_element(By.TAG_NAME, "h1").text

    def text(self) -> str:
        return self.driver.find_element(By.TAG_NAME, "main").text

    def wait_for(self, words: str, timeout: float = 15.0) -> None:
        def shown(driver: WebDriver) -> bool:
            try:
                return words in driver.find_element(By.TAG_NAME, "main").text
            except WebDriverException:  # the page was replaced while we read it (a refresh)
                return False

        WebDriverWait(self.driver, timeout).until(shown, f"{words!r} never appeared")

    def log_in(self, username: str) -> None:
        self.driver.delete_all_cookies()
        self.open("/staff")
        self.driver.find_element(By.ID, "username").send_keys(username)
        self.driver.find_element(By.ID, "password").send_keys(PASSWORD + Keys.ENTER)
        WebDriverWait(self.driver, 10).until(lambda d: "/login" not in d.current_url)

    def press(self, element: WebElement) -> None:
        """Click something that loads a page, and wait until the new page is there."""
        # Mark the current page; a new document has no mark. Asking an element whether it
        # went stale races with the navigation in Chromium ("Node ... does not belong to
        # the document"), so the question goes to the window instead.
        self.driver.execute_script("window.patronlinkOldPage = true")
        element.click()

        def new_page(driver: WebDriver) -> bool:
            try:
                return bool(
                    driver.execute_script(
                        "return document.readyState === 'complete' && !window.patronlinkOldPage"
                    )
                )
            except WebDriverException:  # asked mid-navigation; ask again
                return False

        WebDriverWait(self.driver, 10).until(new_page, "the click loaded no new page")

    def click(self, label: str) -> None:
        self.press(
            self.driver.find_element(By.XPATH, f"//main//button[normalize-space()='{label}']")
        )


@pytest.fixture
def site(
    db: Database,
    settings: Settings,
    clock: FrozenClock,
    tmp_path: Path,
    browser: WebDriver,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Staff, XmlGatewayServer]]:
    for name, value in ENVIRON.items():
        monkeypatch.setenv(name, value)
    with XmlGatewayServer() as gateway:
        configure(db, clock, tmp_path, gateway.url)
        add_users(db, clock)
        (tmp_path / "students.json").write_bytes(folio_body([folio_user(1), folio_user(2)]))
        with live_server(create_app(settings, db, system_clock)) as url:
            yield Staff(browser, url), gateway


def work(db: Database, settings: Settings) -> None:
    """What `patronlink worker --once` does: deliver everything due now."""
    asyncio.run(run_worker(db, settings, system_clock, asyncio.Event(), once=True))


def test_error_queue_retry_and_sent(
    site: tuple[Staff, XmlGatewayServer], db: Database, settings: Settings, tmp_path: Path
) -> None:
    staff, gateway = site
    gateway.default = XmlGatewayServer.code_reply(1002, "Invalid phone number specified.")
    message_id = queue_sms(db, A, "52903991", "Din bog er klar til afhentning", system_clock)
    work(db, settings)
    assert gateway.requests[0].form["number"] == "52903991"

    staff.log_in("anna")
    assert staff.heading() == "Dashboard"
    assert staff.driver.find_element(By.ID, "errors").text == "1"
    staff.press(staff.driver.find_element(By.LINK_TEXT, "Error queue"))
    assert staff.heading() == "Error queue"
    row = staff.driver.find_element(By.ID, f"message-{message_id}")
    assert "1002" in row.text
    assert "Invalid phone number specified." in row.text
    assert "+4552903991" in row.text
    row.find_element(By.TAG_NAME, "summary").click()  # the attempts, with the gateway's reply
    attempts = row.find_element(By.CSS_SELECTOR, "table.attempts").text
    assert "permanent" in attempts
    assert "1002" in attempts
    staff.driver.save_screenshot(str(tmp_path / "error-queue.png"))

    # Filter by another code: the text is not listed; by its own: it is.
    staff.open("/staff/errors?code=1017")
    assert f"message-{message_id}" not in staff.driver.page_source
    staff.open("/staff/errors?code=1002")
    row = staff.driver.find_element(By.ID, f"message-{message_id}")
    staff.press(row.find_element(By.XPATH, ".//button[normalize-space()='Retry']"))
    staff.wait_for("1 message(s) queued again.")
    assert f"message-{message_id}" not in staff.driver.page_source

    gateway.default = XmlGatewayServer.spec_success()
    work(db, settings)
    staff.open(f"/staff/messages/{message_id}")
    assert staff.heading() == f"Message {message_id}"
    assert staff.driver.find_element(By.ID, "status").text == "sent"
    history = staff.driver.find_element(By.CSS_SELECTOR, "table.attempts").text
    assert "permanent" in history
    assert "sent" in history
    assert "SMS afsendt." in history  # the spec's success reply, as the gateway gave it


def test_tenancy_csrf_language_and_import(
    site: tuple[Staff, XmlGatewayServer], db: Database
) -> None:
    staff, _ = site
    message_id = queue_sms(db, A, "52903991", "Hej", system_clock)

    # Agency B's user cannot open agency A's message by its URL.
    staff.log_in("bo")
    staff.open(f"/staff/messages/{message_id}")
    assert staff.heading() == "Ikke fundet"
    assert "Hej" not in staff.text()

    # Keyboard: the first Tab lands on the skip link.
    staff.driver.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    assert staff.driver.switch_to.active_element.get_attribute("class") == "skip"

    # A's user: switch the language with the buttons in the header.
    staff.log_in("anna")
    staff.press(staff.driver.find_element(By.CSS_SELECTOR, "button[value='da']"))
    assert staff.heading() == "Overblik"
    staff.press(staff.driver.find_element(By.CSS_SELECTOR, "button[value='en']"))
    assert staff.heading() == "Dashboard"

    # A dry run shows what an import would do, and changes nothing.
    staff.open("/staff/imports")
    staff.click("Dry run (changes nothing)")
    assert staff.heading() == "Dry run of ucl-students"
    assert "Nothing was saved" in staff.text()
    assert "Jensen1" in staff.text()
    staff.open("/staff/imports")
    assert "Nothing found." in staff.text()  # no run recorded

    # A form posted without its CSRF token is refused.
    staff.driver.execute_script(
        "document.querySelectorAll('input[name=csrf_token]').forEach(e => e.remove())"
    )
    staff.click("Run now")
    assert staff.heading() == "Not allowed"
    assert "The form could not be accepted" in staff.text()

    # Run the import for real and see it listed with its counts.
    staff.open("/staff/imports")
    staff.click("Run now")
    staff.wait_for("succeeded")  # the run's page refreshes itself until the run is done
    assert staff.driver.find_element(By.ID, "created").text == "2"
    staff.open("/staff/imports")
    run = staff.driver.find_element(By.CSS_SELECTOR, "table.runs tbody tr")
    cells = [c.text for c in run.find_elements(By.TAG_NAME, "td")]
    assert cells[1:4] == ["ucl-students", "staff", "succeeded"]
    assert cells[5:7] == ["2", "2"]  # records, created
    staff.open("/staff/patrons?q=Jensen1")
    assert "Jensen1" in staff.text()
