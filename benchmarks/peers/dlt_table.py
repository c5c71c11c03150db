"""dlt's best path for one table, run with the peers' environment (.venv-peers):
`python dlt_table.py SCHEMA TABLE KEY[,KEY...] DATASET`.

`sql_table` with the pyarrow backend reading the source over psycopg2, merged on the primary key into
PostgreSQL — the configuration the measured anchors used.
"""

from __future__ import annotations

import json
import os
import sys

import dlt
from dlt.sources.sql_database import sql_table

schema, table_name, key, dataset = sys.argv[1:5]
table = sql_table(
    credentials=os.environ["PEER_SOURCE_URL"],
    schema=schema,
    table=table_name,
    backend="pyarrow",
    chunk_size=50_000,
)
table.apply_hints(primary_key=key.split(","), write_disposition="merge")
pipeline = dlt.pipeline(
    pipeline_name=f"bench_{dataset}",
    destination=dlt.destinations.postgres(os.environ["PEER_TARGET_URL"]),
    dataset_name=dataset,
    pipelines_dir=os.environ["DLT_PIPELINES_DIR"],
)
info = pipeline.run(table)
print(json.dumps({"loads": len(info.loads_ids)}))
