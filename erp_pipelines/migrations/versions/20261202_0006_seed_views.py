"""the seeds' monitoring tables as views: sync_history and sync_event

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 05:00:00

The AS400 seed (as400-integration.md, "Monitoring") points operators at the tables `sync_history` and
`sync_event`; the 4D seed's `SyncLog` / `SyncError` models give their columns (`table_name`, `status`,
`records_processed/created/updated/failed`, `start_time`, `end_time`, `error_message`; `record_id`,
`record_data`). Both are read-only views over the audit tables, so there is one record of what happened:
`sync_run` (one row per table per run), `sync_error` (one row per rejected record) and `sync_alert`.
Views are not in the SQLAlchemy metadata, so the schema-versus-catalog comparison does not see them.
"""

from __future__ import annotations

from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

# `status` is sync_run's: RUNNING, COMPLETED, PARTIALLY_COMPLETED (records held in quarantine) or FAILED; the
# seed's PENDING never appears (a run waiting in Dagster's queue has not started a sync_run yet).
# `records_failed` are the rejected (quarantined) records; a failed run's counts are zero (nothing committed).
SYNC_HISTORY = """
create view sync_history as
select r.id,
       r.source_table as table_name,
       r.entity,
       r.source_system,
       r.mode,
       r.status,
       r.processed as records_processed,
       r.created as records_created,
       r.updated as records_updated,
       r.rejected as records_failed,
       r.unchanged as records_unchanged,
       r.deleted as records_deleted,
       r.started_at as start_time,
       r.finished_at as end_time,
       coalesce(r.error_message, '') as error_message,
       r.dagster_run_id,
       r.started_at as created_at,
       coalesce(r.finished_at, r.started_at) as updated_at
from sync_run r
"""

# One row per rejected record (event_type RECORD_ERROR, with its key, rules and raw record) and per alert
# (event_type the alert's kind in capitals: FRESHNESS_OVERDUE, FULL_SYNC_FORCED, ...). `record_id` is the
# record's key as shown by `erp-sync errors` (its raw key values joined by '|').
SYNC_EVENT = """
create view sync_event as
select 'error-' || e.id as id,
       'RECORD_ERROR' as event_type,
       e.sync_run_id as sync_history_id,
       r.source_table as table_name,
       e.entity,
       e.source_system,
       array_to_string(array(select jsonb_array_elements_text(e.source_key)), '|') as record_id,
       e.error_message,
       e.raw_record as record_data,
       e.rules,
       e.created_at,
       e.resolved_at,
       e.resolved_by_run_id as resolved_by_sync_history_id
from sync_error e
join sync_run r on r.id = e.sync_run_id
union all
select 'alert-' || a.id,
       upper(a.kind),
       case when a.run_key ~ '^sync_run:[0-9]+$' then substr(a.run_key, 10)::bigint end,
       null,
       a.entity,
       null,
       null,
       a.message,
       null,
       null,
       a.created_at,
       null,
       null
from sync_alert a
"""


def upgrade() -> None:
    op.execute(SYNC_HISTORY)
    op.execute(SYNC_EVENT)
    op.execute("comment on view sync_history is 'One row per table per sync run (sync_run), with the column names "
               "of the seed documents'' SyncLog'")
    op.execute("comment on view sync_event is 'Rejected records (sync_error) and alerts (sync_alert) of the sync "
               "runs, with the column names of the seed documents'' SyncError'")


def downgrade() -> None:
    op.execute("drop view sync_event")
    op.execute("drop view sync_history")
