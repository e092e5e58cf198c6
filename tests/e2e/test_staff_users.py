"""Staff users in headless Chromium (issue 18, item 3): an administrator disables a user, whose
open session ends at once, and resets another's password, shown once, which then logs in. Same
browser and site as ``test_staff_daily``."""

from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.test_staff_daily import staff  # noqa: F401 - the site with its users, in Chromium
from tests.e2e.test_staff_ui import Staff, browser  # noqa: F401 - the module's browser fixture

COOKIE = "patronlink_staff"


def test_an_administrator_disables_a_user_and_resets_a_password(
    staff: Staff,  # noqa: F811 - the fixture imported above
) -> None:
    # anna is signed in; her cookie is kept to come back with later.
    staff.log_in("anna")
    assert "Staff users" not in staff.driver.find_element(By.TAG_NAME, "nav").text
    annas = staff.driver.get_cookie(COOKIE)
    assert annas is not None

    staff.log_in("root")
    staff.press(staff.driver.find_element(By.LINK_TEXT, "Staff users"))
    assert staff.heading() == "Staff users"
    assert "1-3 of 3" in staff.text()
    staff.press(staff.driver.find_element(By.XPATH, "//button[@aria-label='Disable anna']"))
    staff.wait_for("User anna is disabled; 1 session(s) ended.")
    row = staff.driver.find_element(By.XPATH, "//tr[td[1]='anna']")
    assert "disabled since" in row.text
    assert row.find_elements(By.XPATH, ".//button[@aria-label='Enable anna']")

    # A password for bo chosen by the server, shown on this page only.
    staff.press(staff.driver.find_element(By.XPATH, "//button[@aria-label='Reset password bo']"))
    staff.wait_for("The new password of bo is shown only this once.")
    password = staff.driver.find_element(By.ID, "new-password").text
    assert len(password) >= 10
    staff.open("/staff/users")
    assert password not in staff.driver.page_source

    # The audit log names root for both.
    staff.open("/staff/audit?object_kind=staff_user&actor=root")
    log = staff.text()
    assert "user disabled" in log
    assert "password reset" in log

    # anna's kept cookie reads no page any more: the login form is shown.
    staff.driver.delete_all_cookies()
    staff.driver.add_cookie({"name": COOKIE, "value": annas["value"], "path": "/staff"})
    staff.open("/staff/errors")
    WebDriverWait(staff.driver, 10).until(lambda d: "/staff/login" in d.current_url)

    # bo logs in with the new password.
    staff.driver.delete_all_cookies()
    staff.open("/staff")
    staff.driver.find_element(By.ID, "username").send_keys("bo")
    staff.driver.find_element(By.ID, "password").send_keys(password + Keys.ENTER)
    WebDriverWait(staff.driver, 10).until(lambda d: "/login" not in d.current_url)
    assert staff.driver.current_url == staff.base + "/staff"
    assert "bo" in staff.driver.find_element(By.CSS_SELECTOR, "header .who").text
