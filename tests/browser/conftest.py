"""Playwright driving Debian's Chromium against the live server; screenshots land in screenshots/."""

import os
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make around it
# are ordinary synchronous ones.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CRM_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
# The machine has no outside network: keep Chromium from trying to reach it.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
PASSWORD = "pw-browser-123!"


@pytest.fixture(scope="session")
def browser():
    from django.db import connection

    if connection.vendor == "sqlite" and not os.environ.get("CRM_BROWSER_TESTS_ON_SQLITE"):
        # What these tests prove is the pages' behaviour in a browser (scripts, dialogs, layout); the
        # server side they call is tested on both databases by tests/admin. Once is enough in CI.
        pytest.skip("browser tests run on PostgreSQL (CRM_BROWSER_TESTS_ON_SQLITE=1 runs them here too)")
    if not Path(CHROMIUM).exists():
        message = f"Chromium not found at {CHROMIUM}: `make test` installs it (apt-get install chromium)."
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def staff_user(transactional_db, django_user_model):
    return django_user_model.objects.create_superuser("rep", "rep@example.com", PASSWORD)


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(viewport={"width": 1400, "height": 900}, base_url=live_server.url)
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def logged_in_page(page, staff_user):
    page.goto("/admin/login/")
    page.fill("#id_username", staff_user.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    return page


def screenshot(page, name: str) -> Path:
    """Save a full-page screenshot a reviewer can look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
