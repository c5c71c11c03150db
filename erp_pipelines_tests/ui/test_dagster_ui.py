"""The Dagster UI in a real browser: what an operator sees and clicks, checked against the databases.

Headless Chromium renders the webserver of the session fixture (`dagster_ui`); assertions are on visible
text and DOM, with explicit waits. GraphQL and the application database give the expected values.
Screenshots land in test-artifacts/ui/; two clean ones are kept in docs/images/ for the README.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from erp_pipelines.assets import OWNERS, REJECTED_SHARE_CHECK_NAME
from erp_pipelines.catalog import CATALOG, get_spec
from erp_pipelines.checks import (
    INTEGRITY_CHECK_NAME,
    POSITION_CHECK_NAME,
    RECONCILIATION_CHECK_NAME,
    VERIFY_CHECK_NAME,
)
from erp_pipelines.engine.audit import shown_key
from erp_pipelines_tests.support.dagster_ui import DagsterUi
from erp_pipelines_tests.support.sandbox import ROOT

pytestmark = pytest.mark.integration

DOCS_IMAGES = ROOT / "docs" / "images"
WAIT = 60
COUNTS = ("processed", "created", "updated", "unchanged", "deleted", "rejected")
GRAPH = "svg[class*=AssetGraphExplorer]"

ASSET_NODES = """
{ assetNodes { assetKey { path } groupName isMaterializable owners { ... on TeamAssetOwner { team } }
  dependencyKeys { path } } }
"""
RUN_STATUS = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status jobName } } }"
INSTIGATORS = """
{ schedulesOrError(repositorySelector: {repositoryName: "__repository__", repositoryLocationName: "%(loc)s"})
    { ... on Schedules { results { name scheduleState { status } } } }
  sensorsOrError(repositorySelector: {repositoryName: "__repository__", repositoryLocationName: "%(loc)s"})
    { ... on Sensors { results { name sensorState { status } } } } }
"""
LOCATION = "{ workspaceOrError { ... on Workspace { locationEntries { name } } } }"


# --- helpers ---------------------------------------------------------------------------------------------------

def wait_until(browser: WebDriver, condition: Callable[[WebDriver], object], what: str, timeout: float = WAIT):
    try:
        return WebDriverWait(browser, timeout, poll_frequency=0.5,
                             ignored_exceptions=(StaleElementReferenceException,)).until(condition)
    except TimeoutException:
        raise AssertionError(f"timed out after {timeout}s waiting for {what} on {browser.current_url}") from None


def page_text(browser: WebDriver) -> str:
    return browser.find_element(By.TAG_NAME, "body").text


def wait_for_texts(browser: WebDriver, *texts: str, timeout: float = WAIT) -> str:
    """Waits until every text is visible on the page; returns the page's visible text."""
    def _all_there(driver: WebDriver) -> str | bool:
        body = page_text(driver)
        return body if all(text in body for text in texts) else False

    try:
        return WebDriverWait(browser, timeout, poll_frequency=0.5,
                             ignored_exceptions=(StaleElementReferenceException,)).until(_all_there)
    except TimeoutException:
        missing = [text for text in texts if text not in page_text(browser)]
        raise AssertionError(f"{missing} not shown on {browser.current_url} within {timeout}s") from None


def clickable(browser: WebDriver, xpath: str, what: str) -> WebElement:
    def _find(driver: WebDriver) -> WebElement | bool:
        for element in driver.find_elements(By.XPATH, xpath):
            if element.is_displayed() and element.is_enabled():
                return element
        return False

    return wait_until(browser, _find, what)


def open_page(browser: WebDriver, ui: DagsterUi, path: str) -> None:
    browser.get(ui.base_url + path)
    wait_until(browser, lambda d: d.execute_script("return document.readyState") == "complete", f"{path} to load")


def screenshot(browser: WebDriver, artifacts: Path, name: str, *copies: Path) -> Path:
    path = artifacts / f"{name}.png"
    assert browser.save_screenshot(str(path)), f"could not save {path}"
    for copy in copies:
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, copy)
    return path


def name_matches(shown: str, full: str) -> bool:
    """The graph shortens long names in the middle at small zoom: 'erp_b…_of_material'."""
    if "…" not in shown:
        return shown == full
    head, tail = shown.split("…", 1)
    return full.startswith(head) and full.endswith(tail) and len(full) >= len(head) + len(tail)


def box(element: WebElement) -> tuple[float, float, float, float]:
    """A foreignObject's box in graph coordinates (independent of zoom and scrolling)."""
    return tuple(float(element.get_attribute(a)) for a in ("x", "y", "width", "height"))  # type: ignore[return-value]


def inside(inner: tuple[float, ...], outer: tuple[float, ...]) -> bool:
    x, y, w, h = inner
    ox, oy, ow, oh = outer
    return ox <= x and oy <= y and x + w <= ox + ow and y + h <= oy + oh


def metadata_value(browser: WebDriver, key: str) -> str:
    """The value cell of a row of the asset's latest-materialization metadata table."""
    row = clickable(browser, f"//tr[td[1][normalize-space()='{key}']]", f"metadata row {key}")
    return row.find_elements(By.XPATH, "./td")[-1].text.strip()


def graph_menu(browser: WebDriver, item: str) -> None:
    """Opens the graph's settings menu (the gear in the viewport's toolbar) and picks an item."""
    gear = clickable(browser, "(//button[.//*[@aria-label='settings']])[last()]", "the graph settings button")
    gear.click()
    clickable(browser, f"//*[@role='menuitem'][contains(normalize-space(.), '{item}')]", f"menu item {item}").click()
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)


def location_name(ui: DagsterUi) -> str:
    (entry,) = ui.graphql(LOCATION)["workspaceOrError"]["locationEntries"]
    return entry["name"]


def latest_sync_run(ui: DagsterUi, entity: str) -> sa.Row:
    with ui.app_engine.connect() as connection:
        return connection.execute(
            sa.text("select * from sync_run where entity = :e order by id desc limit 1"), {"e": entity}
        ).one()


# --- tests -----------------------------------------------------------------------------------------------------

def test_asset_graph_shows_every_asset_grouped_by_source_system_with_lineage(
    dagster_ui: DagsterUi, browser: WebDriver, artifacts: Path
) -> None:
    nodes = dagster_ui.graphql(ASSET_NODES)["assetNodes"]
    expected = {"/".join(n["assetKey"]["path"]): n for n in nodes}
    assert len(expected) == len(CATALOG) + len({(s.source_system, s.source_table) for s in CATALOG}) == 21
    edges = sum(len(n["dependencyKeys"]) for n in nodes)

    open_page(browser, dagster_ui, "/assets")
    clickable(browser, "//a[contains(normalize-space(.), 'View lineage')]", "the catalog's 'View lineage' link").click()
    wait_for_texts(browser, "Global asset lineage", "as400", "legacy_4d")
    assert "/asset-groups" in browser.current_url
    # groups start collapsed: expand them, lay the graph out top-down, and reload so it is zoomed to fit
    graph_menu(browser, "Expand all groups")
    graph_menu(browser, "vertical orientation")
    browser.refresh()

    def _all_nodes(driver: WebDriver) -> list[WebElement] | bool:
        names = driver.find_elements(By.CSS_SELECTOR, f"{GRAPH} [class*=AssetNode_assetName]")
        return names if len(names) == len(expected) and all(n.text for n in names) else False

    names = wait_until(browser, _all_nodes, f"all {len(expected)} asset nodes to be drawn")
    time.sleep(1)  # let the zoom-to-fit animation settle before the screenshot
    screenshot(browser, artifacts, "asset-graph")
    panel = browser.find_element(By.XPATH, "//*[local-name()='svg'][contains(@class, 'AssetGraphExplorer')]"
                                           "/ancestor::div[contains(@class, 'SplitPanelContainer_splitPanel')][1]")
    DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
    assert panel.screenshot(str(DOCS_IMAGES / "asset-graph.png"))  # the graph alone, for the README

    groups = {
        element.find_element(By.CSS_SELECTOR, "[data-tooltip]").get_attribute("data-tooltip"): box(element)
        for element in browser.find_elements(By.CSS_SELECTOR, f"{GRAPH} foreignObject.group")
    }
    assert set(groups) == {"as400", "legacy_4d"}
    drawn: dict[str, str] = {}
    for name in names:
        shown = name.text.strip()
        # a node's name is the last part of its key; sources are as400/LIB/TABLE or legacy_4d/Dataclass
        (key,) = [k for k in expected if name_matches(shown, k.rsplit("/", 1)[-1]) and k not in drawn]
        drawn[key] = shown
        node_box = box(name.find_element(By.XPATH, "ancestor::*[local-name()='foreignObject'][1]"))
        group = expected[key]["groupName"]
        assert inside(node_box, groups[group]), f"{key} is drawn outside its group {group}"
    assert set(drawn) == set(expected)
    assert {k for k, n in expected.items() if n["groupName"] == "as400"} == (
        {f"as400/{s.source_table.replace('.', '/')}" for s in CATALOG if s.source_system == "as400"}
        | {f"app/{s.target_table}" for s in CATALOG if s.source_system == "as400"}
    )
    lines = browser.find_elements(By.CSS_SELECTOR, f"{GRAPH} path[marker-end]")
    assert len(lines) == edges == 19, f"{len(lines)} edges drawn, {edges} dependencies defined"

    # the lineage of one table, read from its own page: source upstream, children downstream
    open_page(browser, dagster_ui, "/assets/app/product")
    clickable(browser, "//a[normalize-space()='Lineage'][contains(@href, 'view=lineage')]",
              "the asset's Lineage tab").click()
    wait_until(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "[class*=AssetNode_assetName]")) >= 5,
               "the asset's lineage graph")
    shown = {e.text for e in browser.find_elements(By.CSS_SELECTOR, "[class*=AssetNode_assetName]")}
    assert {"PRODUCTS", "product", "product_measurement", "product_pricing", "product_stock"} <= shown
    screenshot(browser, artifacts, "asset-lineage-product")


@pytest.mark.parametrize("entity", ["product", "erp_product"])
def test_asset_page_shows_schema_owners_counts_rejections_checks_and_freshness(
    dagster_ui: DagsterUi, browser: WebDriver, artifacts: Path, entity: str
) -> None:
    spec = get_spec(entity)
    run = latest_sync_run(dagster_ui, entity)
    with dagster_ui.app_engine.connect() as connection:
        live = connection.exec_driver_sql(f'select count(*) from "{entity}" where deleted_at is null').scalar_one()
        rejected_keys = connection.execute(
            sa.text("select distinct source_key from sync_error where sync_run_id = :id"), {"id": run.id}
        ).scalars().all()
    assert run.rejected > 0 and rejected_keys, "the seeded sources hold bad records"

    open_page(browser, dagster_ui, f"/assets/app/{entity}")
    columns = list(spec.model.to_schema().columns.items())
    body = wait_for_texts(
        browser, "Latest materialization", "Description", spec.description, "Columns", "Owners",
        "erp-integration", "Row count", "Freshness policy", "Passing", f"erp_app.erp_sync.{entity}",
        *(name for name, _ in columns), *(c.description for _, c in columns if c.description),
    )
    assert "non-nullable" in body and "not blank" in body and "length <=" in body  # readable constraints
    assert "<Check" not in body
    # the status header: row count = live rows, the latest check results
    assert re.search(rf"Row count\s+{live:,}\b|Row count\s+{live}\b", body), "row count not shown"
    # four checks passed and one not executed: the row-by-row verification runs only in verify_job
    shown_checks = body[body.find("Latest check results"):][:80]
    assert re.search(r"Latest check results\s+1\s+4\b", body), f"1 not run and 4 passed expected: {shown_checks!r}"

    shown_counts = {name: metadata_value(browser, name) for name in COUNTS}
    assert shown_counts == {name: str(getattr(run, name)) for name in COUNTS}
    assert metadata_value(browser, "mode") == run.mode
    assert metadata_value(browser, "status") == run.status
    assert metadata_value(browser, "sync_run_id") == str(run.id)
    assert float(metadata_value(browser, "rows_per_second")) > 0
    rejected_table = metadata_value(browser, "rejected_records")
    assert "source_key" in rejected_table and "reason" in rejected_table
    assert all(shown_key(tuple(key)) in rejected_table for key in rejected_keys), (rejected_keys, rejected_table)
    screenshot(browser, artifacts, f"asset-page-{entity}",
               *([DOCS_IMAGES / "asset-page.png"] if entity == "product" else []))
    browser.execute_script("window.scrollTo(0, 0)")
    row = browser.find_element(By.XPATH, "//tr[td[1][normalize-space()='rejected_records']]")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", row)
    screenshot(browser, artifacts, f"asset-page-{entity}-metadata")

    clickable(browser, "//a[normalize-space()='Checks'][contains(@href, 'view=checks')]",
              "the asset's Checks tab").click()
    body = wait_for_texts(browser, "Checks (5)", INTEGRITY_CHECK_NAME, RECONCILIATION_CHECK_NAME, POSITION_CHECK_NAME,
                          VERIFY_CHECK_NAME,
                          REJECTED_SHARE_CHECK_NAME, "This is a blocking asset check.", "Passed", "live_rows",
                          "duplicate_keys")
    assert len(re.findall(r"Succeeded", body)) >= 3, "every check should show its latest result"
    screenshot(browser, artifacts, f"asset-checks-{entity}")
    clickable(browser, f"//*[normalize-space()='{RECONCILIATION_CHECK_NAME}']", "the reconciliation check").click()
    wait_for_texts(browser, "source_records", "unaccounted_source_records", "live_rows_not_in_source", "Passed")
    screenshot(browser, artifacts, f"asset-checks-{entity}-reconciliation")

    node = next(n for n in dagster_ui.graphql(ASSET_NODES)["assetNodes"] if n["assetKey"]["path"] == ["app", entity])
    assert [f"team:{o['team']}" for o in node["owners"]] == OWNERS


def test_jobs_schedules_and_sensors_are_listed(dagster_ui: DagsterUi, browser: WebDriver, artifacts: Path) -> None:
    jobs = ("as400_daily_job", "as400_inventory_job", "legacy_4d_daily_job", "full_resync_job")
    schedules = ("as400_daily_schedule", "as400_inventory_schedule", "legacy_4d_daily_schedule")
    sensors = ("as400_change_sensor", "legacy_4d_change_sensor", "freshness_sensor")

    open_page(browser, dagster_ui, "/overview")
    clickable(browser, "//a[normalize-space()='Jobs']", "the Jobs navigation link").click()
    wait_for_texts(browser, *jobs)
    screenshot(browser, artifacts, "jobs")

    clickable(browser, "//a[normalize-space()='Automation']", "the Automation navigation link").click()
    body = wait_for_texts(browser, *schedules, *sensors, "At 02:00 AM UTC", "At 03:00 AM UTC")
    assert body.count("Standard sensor") == 3
    screenshot(browser, artifacts, "automation")

    # each row's switch shows whether it runs: schedules and the freshness sensor on, change sensors off
    location = location_name(dagster_ui)
    states = dagster_ui.graphql(INSTIGATORS % {"loc": location})
    expected = {s["name"]: s["scheduleState"]["status"] == "RUNNING" for s in states["schedulesOrError"]["results"]}
    expected |= {s["name"]: s["sensorState"]["status"] == "RUNNING" for s in states["sensorsOrError"]["results"]}
    assert expected == {**dict.fromkeys(schedules, True), "freshness_sensor": True, "verify_schedule": False,
                        "as400_change_sensor": False, "legacy_4d_change_sensor": False}
    for name, running in expected.items():
        row = clickable(browser, f"//*[normalize-space(text())='{name}']"
                        "/ancestor::*[count(.//input[@type='checkbox']) >= 2][1]", f"the row of {name}")
        switch = row.find_elements(By.CSS_SELECTOR, "input[type=checkbox]")[-1]  # the first one selects the row
        assert switch.is_selected() == running, f"{name} shows {'off' if running else 'on'}"

    clickable(browser, "//*[normalize-space(text())='freshness_sensor']", "the freshness sensor").click()
    wait_for_texts(browser, "freshness_sensor", "Catches up overdue tables")
    screenshot(browser, artifacts, "freshness-sensor")


def test_job_launched_from_the_launchpad_runs_and_is_audited(
    dagster_ui: DagsterUi, browser: WebDriver, artifacts: Path
) -> None:
    open_page(browser, dagster_ui, "/jobs")
    clickable(browser, "//a[normalize-space()='as400_inventory_job']", "the as400_inventory_job link").click()
    wait_for_texts(browser, "as400_inventory_job", "AS400 inventory levels (hourly).")
    browser.get(browser.current_url.split("?")[0].rstrip("/") + "/playground")
    wait_for_texts(browser, "No errors", "Launch Run", "app__product_stock")
    screenshot(browser, artifacts, "launchpad")
    clickable(browser, "//button[normalize-space()='Launch Run']", "the Launch Run button").click()

    run_url = wait_until(browser, lambda d: re.search(r"/runs/([0-9a-f-]{36})", d.current_url),
                         "the run page to open after launching")
    run_id = run_url.group(1)
    deadline = time.monotonic() + 300
    status = None
    while time.monotonic() < deadline:
        status = dagster_ui.graphql(RUN_STATUS, {"id": run_id})["runOrError"]
        if status["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(2)
    assert status and status["jobName"] == "as400_inventory_job"
    assert status["status"] == "SUCCESS", f"run {run_id}: {status}\n{dagster_ui.log_tails()}"
    # the run page that opened on launch follows the run live: it shows the success without a reload
    wait_for_texts(browser, "Success", "RUN_SUCCESS", "app / product_stock", "as400_inventory_job")
    screenshot(browser, artifacts, "launched-run")

    with dagster_ui.app_engine.connect() as connection:
        audited = connection.execute(
            sa.text("select entity, status, processed, mode from sync_run where dagster_run_id = :id"),
            {"id": run_id},
        ).all()
    assert [row.entity for row in audited] == ["product_stock"]
    assert audited[0].status in ("COMPLETED", "PARTIALLY_COMPLETED") and audited[0].mode == "incremental"

    # and the run is in the UI's run list
    open_page(browser, dagster_ui, "/runs")
    wait_for_texts(browser, run_id[:8], "as400_inventory_job")

