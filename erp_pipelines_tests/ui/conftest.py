"""Fixtures of the browser tests: a seeded sandbox, a real Dagster webserver and daemon, headless Chromium.

The stack is built once per session: both legacy sources are seeded, every asset is materialized once
through the CLI, then `dagster-webserver` and `dagster-daemon` are started as an operator would start them
(from an empty directory, so the sandbox's `.env` cannot override the test databases) and stopped at the
end, whatever happened. Chromium comes from Debian (`chromium`, `chromium-driver`), driven by Selenium.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from erp_pipelines.app_db.engine import app_engine
from erp_pipelines.catalog import application_metadata
from erp_pipelines_tests.support.dagster_ui import DagsterUi, free_port, stop_process_group, wait_for_server
from erp_pipelines_tests.support.legacy_4d import APP_NAME, PASSWORD, USERNAME
from erp_pipelines_tests.support.sandbox import ROOT, operator_env
from erp_sandbox.as400.seed import seed_as400
from erp_sandbox.legacy_4d.seed import seed_store
from erp_sandbox.legacy_4d.server import EmulatorServer
from erp_sandbox.legacy_4d.store import LegacyStore

ARTIFACTS = ROOT / "test-artifacts" / "ui"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1600,1000", "--hide-scrollbars",
)


@pytest.fixture(scope="session")
def dagster_ui(
    tmp_path_factory: pytest.TempPathFactory,
    app_url: str,
    as400_owner_url: str,
    legacy4d_session_store: LegacyStore,
) -> Iterator[DagsterUi]:
    """Seeded sources, every asset materialized once, and a live webserver + daemon on a free port."""
    tmp = tmp_path_factory.mktemp("dagster_ui")
    engine = app_engine(app_url)
    names = ", ".join(f'"{table.name}"' for table in application_metadata().sorted_tables)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"truncate {names} restart identity cascade")
    manifest = seed_as400(as400_owner_url, products=120, bad_share=0.02)
    legacy4d_session_store.truncate()
    summary = seed_store(legacy4d_session_store.url, products=200, seed=7, bad_share=0.05)

    processes: list[subprocess.Popen] = []
    emulator = EmulatorServer(legacy4d_session_store.url, port=0, licenses=3, app_name=APP_NAME,
                              username=USERNAME, password=PASSWORD, ensure_schema=False).start()
    try:
        workdir = tmp / "cwd"  # no .env here: Dagster's CLIs would load it over the environment
        workdir.mkdir()
        env = operator_env(tmp, app_url, emulator.port)
        port = free_port()
        ui = DagsterUi(base_url=f"http://127.0.0.1:{port}", env=env, app_engine=engine, as400_manifest=manifest,
                       legacy4d_summary=summary)

        synced = subprocess.run([sys.executable, "-m", "erp_pipelines.commands", "sync"], env=env, cwd=workdir,
                                capture_output=True, text=True, timeout=600)
        assert synced.returncode == 0, synced.stdout[-3000:] + synced.stderr[-3000:]

        bin_dir = Path(sys.executable).parent
        target = ["-m", "erp_pipelines.definitions"]
        commands = {
            "webserver": [str(bin_dir / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), *target],
            "daemon": [str(bin_dir / "dagster-daemon"), "run", *target],
        }
        for name, command in commands.items():
            ui.logs[name] = tmp / f"{name}.log"
            with ui.logs[name].open("w") as log:
                processes.append(subprocess.Popen(command, env=env, cwd=workdir, stdout=log,
                                                  stderr=subprocess.STDOUT, start_new_session=True))
        wait_for_server(ui, processes[0])
        ui.graphql("mutation { setNuxSeen }")  # the one-time "Join the Dagster community" dialog
        yield ui
    finally:
        for process in processes:
            stop_process_group(process)
        emulator.stop()
        engine.dispose()


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    """Headless Chromium (Debian's), a fresh profile, a desktop-sized window."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium_profile')}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS

