"""The sandbox Django admin in a real browser: the product list shows what the sync wrote.

The 4D entities are synced into the application's tables (as engine/test_application_target.py does), a
superuser is made in the test database by `manage.py ensure_sandbox_admin` (credentials in the environment,
never on a command line), and `manage.py runserver` serves the admin on a free port. Headless Chromium (the
`browser` fixture) logs in through the admin's form and opens the product list; the ORM gives the expected
values. The screenshot lands in test-artifacts/ui/.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from erp_pipelines.catalog import PROJECT_SPECS
from erp_pipelines.engine.sync import run_sync
from erp_pipelines.sources.legacy_4d.resource import Legacy4DResource
from erp_pipelines_tests.support.dagster_ui import free_port, stop_process_group
from erp_pipelines_tests.support.django_app import PROJECT, DjangoApp
from erp_pipelines_tests.support.legacy_4d import PASSWORD, USERNAME
from erp_pipelines_tests.ui.test_dagster_ui import clickable, screenshot, wait_for_texts, wait_until
from erp_sandbox.legacy_4d.server import EmulatorServer
from erp_sandbox.legacy_4d.store import LegacyStore

pytestmark = pytest.mark.integration

LEGACY_4D = [spec.onto_application() for spec in PROJECT_SPECS if spec.source_system == "legacy_4d"]
ADMIN_USER = "ui_test_admin"
STARTUP_TIMEOUT = 60


def _django_env(password: str) -> dict[str, str]:
    """The application's environment against the test database, with the test superuser's credentials."""
    return dict(os.environ, DJANGO_DATABASE_URL=os.environ["TEST_DJANGO_DATABASE_URL"], DJANGO_DEBUG="true",
                DJANGO_ADMIN_USER=ADMIN_USER, DJANGO_ADMIN_PASSWORD=password)


@contextlib.contextmanager
def _runserver(env: dict[str, str], log_path: Path) -> Iterator[str]:
    """`manage.py runserver` on a free port until it answers; stopped (its process group) afterwards."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with log_path.open("w") as log:
        process = subprocess.Popen([sys.executable, str(PROJECT / "manage.py"), "runserver", f"127.0.0.1:{port}",
                                    "--noreload"], env=env, cwd=PROJECT, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            assert process.poll() is None, f"runserver exited\n{log_path.read_text(errors='replace')[-3000:]}"
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{base_url}/admin/login/", timeout=5).status_code == 200:
                    break
            assert time.monotonic() < deadline, (
                f"runserver did not answer in {STARTUP_TIMEOUT}s\n{log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)
        yield base_url
    finally:
        stop_process_group(process)


def test_admin_product_list_shows_the_synced_products(
    legacy4d_seeded: dict, legacy4d_server: EmulatorServer, legacy4d_store: LegacyStore, app_db: sa.Engine,
    django_app: DjangoApp, browser: WebDriver, artifacts: Path, tmp_path: Path,
) -> None:
    resource = Legacy4DResource(host="127.0.0.1", port=legacy4d_server.port, username=USERNAME, password=PASSWORD,
                                page_size=100, batch_rows=250, overlap_stamps=0)
    reports = {spec.entity: run_sync(spec, resource.source(), app_db, max_rejected_share=0.5) for spec in LEGACY_4D}
    from products.models import Product

    live = Product.objects.filter(deleted_at__isnull=True).count()
    assert live == reports["erp_product"].created > 0
    assert Product.objects.count() == live  # the admin lists every row: none is soft-deleted after one sync
    # the admin orders by -pk: the newest product with a SKU and a category is on the first page
    known = (Product.objects.select_related("category").exclude(sku__isnull=True).exclude(category__isnull=True)
             .order_by("-pk").first())
    assert known is not None and known.category is not None
    record = legacy4d_store.get("Products", known.legacy_id) or {}
    assert known.category.name == record["Category"].rstrip()

    env = _django_env(secrets.token_urlsafe(18))
    created = subprocess.run([sys.executable, str(PROJECT / "manage.py"), "ensure_sandbox_admin"], env=env,
                             cwd=PROJECT, capture_output=True, text=True, timeout=120)
    assert created.returncode == 0, created.stdout[-3000:] + created.stderr[-3000:]

    with _runserver(env, tmp_path / "runserver.log") as base_url:
        browser.delete_all_cookies()
        browser.get(f"{base_url}/admin/login/?next=/admin/products/product/")
        clickable(browser, "//input[@id='id_username']", "the login form's username").send_keys(ADMIN_USER)
        browser.find_element(By.ID, "id_password").send_keys(env["DJANGO_ADMIN_PASSWORD"])
        browser.find_element(By.XPATH, "//input[@type='submit'][@value='Log in']").click()
        wait_until(browser, lambda d: d.current_url.rstrip("/").endswith("/admin/products/product"),
                   "the product list after logging in")
        body = wait_for_texts(browser, "Select product to change", f"{live} products", known.sku)
        paginator = browser.find_element(By.CSS_SELECTOR, "#changelist .paginator").text
        assert re.search(rf"\b{live} products\b", paginator), paginator
        assert "Please enter the correct username" not in body
        row = browser.find_element(
            By.XPATH, f"//table[@id='result_list']//tr[th[contains(@class, 'field-sku')][normalize-space()="
                      f"'{known.sku}']]")
        assert row.find_element(By.CSS_SELECTOR, "td.field-category").text.strip() == known.category.name
        screenshot(browser, artifacts, "django-admin-products")
