"""A fetched batch is bounded in bytes as well as in rows (AS400_BATCH_BYTES), so a wide file stays in memory."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from erp_pipelines.catalog import get_spec
from erp_pipelines.sources.as400.adapter import As400Source
from erp_pipelines.sources.as400.resource import As400Resource
from erp_sandbox.as400.seed import SeedManifest

pytestmark = pytest.mark.integration

PRODUCT = get_spec("product")


def _batch_rows(as400: As400Resource, batch_bytes: int) -> list[int]:
    settings = as400.replaced(batch_rows=20_000, batch_bytes=batch_bytes)
    with As400Source(settings).extract(PRODUCT, None) as extraction:  # type: ignore[arg-type]
        return [batch.num_rows for batch in extraction.batches()]


def test_the_byte_bound_splits_batches_the_row_bound_allows(
    seed: Callable[..., SeedManifest], as400: As400Resource,
) -> None:
    """3,000 products fit one 20,000-row batch under arrow-odbc's default 512 MiB; a 1 MiB bound on the fetch
    buffer (max_bytes_per_batch) splits them into several smaller batches, every row delivered once."""
    seed(products=3000, bad_share=0.0)
    assert _batch_rows(as400, 512 << 20) == [3000]
    bounded = _batch_rows(as400, 1 << 20)
    assert sum(bounded) == 3000
    assert len(bounded) > 1 and max(bounded) < 3000


def test_a_bound_below_one_mebibyte_is_refused(as400: As400Resource) -> None:
    with pytest.raises(ValueError, match="AS400_BATCH_BYTES"):
        as400.replaced(batch_bytes=4096)
