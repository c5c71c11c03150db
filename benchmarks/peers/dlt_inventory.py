"""dlt's best path for this table, run with the peers' environment (.venv-peers).

`sql_table` with the pyarrow backend reading the source over psycopg2, merged on the primary key into
PostgreSQL — the configuration the measured anchors used.
"""

from __future__ import annotations

import json
import os

import dlt
from dlt.sources.sql_database import sql_table

table = sql_table(
    credentials=os.environ["PEER_SOURCE_URL"],
    schema="INVENTORYLIB",
    table="INVENTORY",
    backend="pyarrow",
    chunk_size=50_000,
)
table.apply_hints(primary_key=["ITEMNO", "WHSE"], write_disposition="merge")
pipeline = dlt.pipeline(
    pipeline_name="bench_inventory",
    destination=dlt.destinations.postgres(os.environ["PEER_TARGET_URL"]),
    dataset_name="dlt_bench",
    pipelines_dir=os.environ["DLT_PIPELINES_DIR"],
)
info = pipeline.run(table)
print(json.dumps({"loads": len(info.loads_ids)}))
