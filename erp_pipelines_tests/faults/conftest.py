"""Fixtures shared by the fault tests."""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg
import pytest
import sqlalchemy as sa

from erp_pipelines.assets import table_asset_key, table_assets
from erp_pipelines.core.spec import TableSpec
from erp_pipelines.resources import AppDatabaseResource


@pytest.fixture
def failed_materialization(app_url: str, app_db: sa.Engine) -> Callable[[TableSpec, dict], tuple[str, str]]:
    """Materializes one table asset in a throwaway Dagster instance, expecting it to fail.

    Returns what an operator sees: the asset's failure description and the error of its FAILED sync_run.
    """

    def _materialize(spec: TableSpec, resources: dict) -> tuple[str, str]:
        asset = next(asset for asset in table_assets if asset.key == table_asset_key(spec))
        with dg.instance_for_test() as instance:
            result = dg.materialize([asset], resources={**resources, "app_db": AppDatabaseResource(url=app_url)},
                                    instance=instance, raise_on_error=False)
        assert not result.success
        (failure,) = result.get_step_failure_events()
        user_failure = failure.step_failure_data.user_failure_data
        assert user_failure is not None, failure.step_failure_data.error  # a dg.Failure, not a crash
        with app_db.connect() as connection:
            status, error = connection.execute(
                sa.text("select status, error_message from sync_run where entity = :e"), {"e": spec.entity}
            ).one()
        assert status == "FAILED"
        return user_failure.description or "", error

    return _materialize
