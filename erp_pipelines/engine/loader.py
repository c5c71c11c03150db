"""Set-based loading into PostgreSQL: the whole read is staged, judged as one, then merged in one go.

Every row a run reads goes into one temporary stage (binary COPY from Arrow), valid or not, with its
position in the read. Only once the read is complete are the run-level rules applied, in SQL, on the
state the run converges to:
- a business key read more than once (in any batch, at any position) rejects every copy;
- a missing live parent rejects the row, changed or unchanged;
- a unique value (SKU) is judged against the converged state — the rows this run loads plus the live rows
  it leaves alone — so swaps, rotations and values freed by a deletion in the same read load at once;
- then deletions, then the upsert of the rows that differ from their live target row.
Judging the whole read at once is what makes batch boundaries irrelevant: a duplicate split across two
batches, or two products swapping SKUs in different batches, is seen as such. The stage lives on disk
(a temporary table), so memory stays bounded by the batch size.

An initial load (the target held no row when the run started) drops the table's foreign keys, primary key
and indexes and builds them again after the insert, inside the run's transaction: the PostgreSQL manual's
recipe for populating a table ("Remove Indexes", "Remove Foreign Key Constraints"); other sessions never see
the table without them. The run-level rules have already made keys and unique values distinct.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from erp_pipelines.core.spec import DELETED_AT, ForeignKey, TableSpec
from erp_pipelines.engine.postgres import columns as _columns
from erp_pipelines.engine.postgres import copy_arrow, quote
from erp_pipelines.engine.target import Target, target_of, typed_columns

POSITION = "_pos"
VALID = "_valid"
MAX_UNIQUE_ROUNDS = 50
WORK_MEM = "64MB"


def _equal(names: Iterable[str], left: str, right: str) -> str:
    return " and ".join(f"{left}.{quote(n)} = {right}.{quote(n)}" for n in names)


def _unique_rule(unique: Sequence[str]) -> str:
    return f"duplicate_{'_'.join(unique)}"


def _shown(names: Sequence[str], alias: str, numeric: frozenset[str] = frozenset()) -> str:
    """SQL text rendering `(name='value', …)` of a row's columns for messages: text quoted (blanks
    visible), numbers bare."""
    parts = " || ', ' || ".join(
        f"'{n}=' || coalesce({alias}.{quote(n)}::text, 'NULL')" if n in numeric else
        f"'{n}=' || coalesce(quote_literal({alias}.{quote(n)}::text), 'NULL')" for n in names
    )
    return f"('(' || {parts} || ')')"


@dataclass
class MergeOutcome:
    """What the merge did; `rejected` maps read positions to the rules they failed."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    withdrawn: int = 0
    rejected: dict[int, dict[str, str]] = field(default_factory=dict)


class RunStage:
    """One run's stage of one entity, on the run's connection and inside its transaction."""

    def __init__(self, connection: sa.Connection, spec: TableSpec, sync_run_id: int) -> None:
        self.connection = connection
        self.spec = spec
        self.target: Target = target_of(spec)
        self.sync_run_id = sync_run_id
        self.stage = f"stage_{spec.entity}"
        self.rejects = f"rejects_{spec.entity}"
        self.deletions = f"deletions_{spec.entity}"
        self.key = spec.business_key
        self.initial_load = False
        self.foreign_keys = self.target.foreign_keys_for_initial_load()

    def _match(self, names: Iterable[str], stage: str, target: str = "t") -> str:
        """Stage row `stage` and target row `target` have the same values of these spec columns."""
        return " and ".join(f"{stage}.{quote(n)} = {target}.{quote(self.target.column(n))}" for n in names)

    def _execute(self, statement: str, parameters: dict | None = None) -> sa.CursorResult:
        return self.connection.exec_driver_sql(statement, parameters or {})

    def _shown(self, names: Sequence[str], alias: str) -> str:
        numeric = frozenset(c.target for c in self.spec.columns if isinstance(c.sql_type, sa.Numeric | sa.Integer))
        return _shown(names, alias, numeric)

    def prepare(self) -> None:
        """Creates the temporary tables; an empty target makes this run an initial load."""
        target = self.target.name
        # The run-level rules aggregate and join the whole read: with PostgreSQL's default 4 MB they spill to
        # disk in batches. For this transaction only ("SET LOCAL", PostgreSQL manual, Resource Consumption).
        self._execute(f"set local work_mem = '{WORK_MEM}'")
        for name in (self.stage, self.rejects, self.deletions):
            self._execute(f"drop table if exists {quote(name)}")
        staged = typed_columns(self.spec, self.spec.column_names)
        self._execute(f"create temporary table {quote(self.stage)} ({staged}, {POSITION} bigint, {VALID} boolean)")
        self._execute(f"create temporary table {quote(self.rejects)} ({POSITION} bigint, rule text, message text)")
        self._execute(f"create temporary table {quote(self.deletions)} ({typed_columns(self.spec, self.key)}, "
                      f"reason text)")
        self.initial_load = self._execute(
            f"select not exists (select 1 from {target} t where {self.target.owned('t')})").scalar_one()

    def add(self, decoded: pa.Table, first_position: int, valid: np.ndarray) -> None:
        """Stages one batch: every row whose business key decoded, valid or not (duplicates count all).

        Of a row that failed validation only the key is kept: its other values may be anything (a NUL
        character, which PostgreSQL text cannot hold), and only its key takes part in the run-level rules.
        """
        stageable = np.ones(decoded.num_rows, dtype=bool)
        for name in self.key:
            column = decoded.column(name)
            stageable &= ~column.is_null().to_numpy(zero_copy_only=False)
            if pa.types.is_string(column.type):
                stageable &= ~pc.fill_null(pc.match_substring(column, "\x00"), False).to_numpy(zero_copy_only=False)
        mask = pa.array(valid)
        columns = [column if name in self.key else pc.if_else(mask, column, pa.nulls(len(column), column.type))
                   for name, column in zip(decoded.column_names, decoded.columns, strict=True)]
        positions = np.arange(first_position, first_position + decoded.num_rows, dtype=np.int64)
        rows = pa.Table.from_arrays([*columns, pa.array(positions), mask],
                                    names=[*decoded.column_names, POSITION, VALID])
        copy_arrow(self.connection, self.stage, rows.filter(pa.array(stageable)))

    def add_deleted_keys(self, keys: pa.Table, reason: str) -> None:
        """Keys the source reports deleted (4D `__DeletedRecords`); a key read again in this run stays."""
        self._execute(f"truncate {quote(self.deletions)}")
        copy_arrow(self.connection, self.deletions, keys.select(list(self.key)).append_column(
            "reason", pa.array([reason] * keys.num_rows, pa.string())))
        self._execute(
            f"delete from {quote(self.deletions)} d using {quote(self.stage)} s where {_equal(self.key, 'd', 's')}"
        )

    # --- run-level rules ------------------------------------------------------------------------------
    def _reject(self, select: str, parameters: dict | None = None) -> int:
        """Adds rejections: `select` yields (position, rule, message) of staged rows."""
        return self._execute(f"insert into {quote(self.rejects)} {select}", parameters).rowcount

    def _accepted(self, alias: str = "s") -> str:
        return (f"{alias}.{VALID} and not exists (select 1 from {quote(self.rejects)} r "
                f"where r.{POSITION} = {alias}.{POSITION})")

    def _analyze_stage(self) -> None:
        """Statistics of the columns the rules join and group on. Autovacuum never analyzes temporary tables
        (PostgreSQL manual, Routine Vacuuming: "temporary tables cannot be accessed by autovacuum ... ANALYZE
        operations should be performed via session SQL commands"); unanalyzed, the planner guessed a few
        hundred rows and chose nested loops over the whole read."""
        names = [*self.key, *(name for unique in self.spec.unique for name in unique),
                 *(name for fk in self.spec.foreign_keys for name in fk.columns), POSITION, VALID]
        self._execute(f"analyze {quote(self.stage)} ({_columns(dict.fromkeys(names))})")

    def _reject_duplicate_keys(self) -> None:
        """Every copy of a key read more than once; the keys are found first (usually none), then their rows."""
        stage, key = quote(self.stage), _columns(self.key)
        repeated = self._execute(f"select {key} from {stage} group by {key} having count(*) > 1").fetchall()
        if not repeated:
            return
        self._execute(f"drop table if exists {quote(self.stage + '_repeated')}")
        self._execute(f"create temporary table {quote(self.stage + '_repeated')} as "
                      f"select {key} from {stage} group by {key} having count(*) > 1")
        self._reject(
            f"select s.{POSITION}, 'duplicate_key', 'duplicate business key ' || d.shown || ': read ' || d.copies "
            f"|| ' times in this read (records ' || d.positions || ' of the read); no copy is loaded' "
            f"from {stage} s join (select {_columns(self.key, 'g.')}, count(*) as copies, "
            f"{self._shown(self.key, 'g')} as shown, "
            f"string_agg((g.{POSITION} + 1)::text, ', ' order by g.{POSITION}) as positions "
            f"from {stage} g join {quote(self.stage + '_repeated')} k using ({key}) group by {_columns(self.key, 'g.')}"
            f") d using ({key})"
        )

    def _no_live_parent(self, fk: ForeignKey, alias: str) -> str:
        parent = target_of(fk.parent)
        pairs = list(zip(fk.columns, fk.parent_columns, strict=True))
        join = " and ".join(f"p.{quote(parent.column(pc))} = {alias}.{quote(c)}" for c, pc in pairs)
        return f"not exists (select 1 from {parent.name} p where {join} and {parent.live('p')})"

    def _reject_missing_parents(self) -> None:
        for fk in self.spec.foreign_keys:
            present = " and ".join(f"s.{quote(c)} is not null" for c in fk.columns)
            self._reject(
                f"select s.{POSITION}, 'missing_parent:{fk.parent.entity}', 'parent {fk.parent.entity} ' || "
                f"{self._shown(fk.columns, 's')} || ' is not live in the application database' "
                f"from {quote(self.stage)} s where s.{VALID} and {present} and {self._no_live_parent(fk, 's')}"
            )

    def _plan_deletions(self) -> None:
        """Full read: live rows whose key was not read at all are deleted at the source. Orphans: live rows
        whose every read copy lost its parent are withdrawn (they would reference a deleted parent)."""
        target, stage, deletions = self.target.name, quote(self.stage), quote(self.deletions)
        if self.target.keeps_deleted:
            return
        owned_live = f"{self.target.live('t')} and {self.target.owned('t')}"
        if not self.spec.distinct_values_of:
            self._execute(
                f"insert into {deletions} select {self.target.columns(self.key, 't')}, 'deleted at the source' "
                f"from {target} t where {owned_live} "
                f"and not exists (select 1 from {stage} s where {self._match(self.key, 's')})"
            )
        if self.spec.foreign_keys:
            self._execute(
                f"insert into {deletions} select distinct {self.target.columns(self.key, 't')}, "
                f"'parent no longer live' from {target} t join {stage} s on {self._match(self.key, 's')} "
                f"join {quote(self.rejects)} r on r.{POSITION} = s.{POSITION} "
                f"and starts_with(r.rule, 'missing_parent:') "
                f"where {owned_live} and not exists (select 1 from {stage} a "
                f"where {self._match(self.key, 'a')} and {self._accepted('a')})"
            )

    def _reject_unique_clashes(self) -> None:
        """Unique values judged on the converged state, repeated until stable: rejecting a row leaves its
        old target row (and value) in place, which may in turn clash with another row of the read, of this
        unique value or of another one. Only such a row can start a new clash (rejecting a row without a
        live target row only shrinks the converged state), so a round that rejected none is the last."""
        for _ in range(MAX_UNIQUE_ROUNDS):
            added = sum(self._reject(self._unique_clashes(unique)) for unique in self.spec.unique)
            if not added or not self._unique_rejects_leave_live_rows():
                return
        raise RuntimeError(f"{self.spec.entity}: unique values of {self.spec.unique} did not settle")

    def _unique_clashes(self, unique: Sequence[str]) -> str:
        """(position, rule, message) of the accepted rows whose value of `unique` the converged state holds
        more than once. The clashing values are found first with a plain GROUP BY (which PostgreSQL can hash),
        then described; the ordered `string_agg` alone would sort every staged value."""
        stage, target, deletions = quote(self.stage), self.target.name, quote(self.deletions)
        columns = _columns(unique)
        present = " and ".join(f"s.{quote(c)} is not null" for c in unique)
        narrow = _columns(dict.fromkeys([*self.key, *unique]))
        return (
            f"with accepted as (select s.{POSITION}, {narrow} from {stage} s where {self._accepted('s')} "
            f"and {present}), "
            f"converged as (select {_columns(self.key)}, {columns}, true as staged from accepted "
            f"union all select {self.target.columns(self.key, 't')}, {self.target.columns(unique, 't')}, "
            f"false from {target} t where {self.target.live('t')} "
            f"and ({self.target.columns(unique, 't')}) in (select {columns} from accepted) "
            f"and not exists (select 1 from accepted a where {self._match(self.key, 'a')}) "
            f"and not exists (select 1 from {deletions} d where {self._match(self.key, 'd')})), "
            f"clashing as (select {columns} from converged group by {columns} having count(*) > 1), "
            f"clash as (select {columns}, string_agg({self._shown(self.key, 'c')} || "
            f"case when c.staged then ' (this read)' else ' (live, not changed by this read)' end, "
            f"'; ' order by c.staged) as holders from converged c join clashing using ({columns}) "
            f"group by {columns}) "
            f"select a.{POSITION}, '{_unique_rule(unique)}', {self._shown(unique, 'a')} || ' would be held by more "
            f"than one {self.spec.entity}: ' || k.holders from accepted a join clash k using ({columns})"
        )

    def _unique_rejects_leave_live_rows(self) -> bool:
        """Whether a row rejected for a unique value has a live target row of its key (which stays)."""
        self._execute(f"analyze {quote(self.rejects)}")
        rules = ", ".join(f"'{_unique_rule(unique)}'" for unique in self.spec.unique)
        return bool(self._execute(
            f"select exists (select 1 from {quote(self.rejects)} r join {quote(self.stage)} s "
            f"on s.{POSITION} = r.{POSITION} join {self.target.name} t on {self._match(self.key, 's')} "
            f"where r.rule in ({rules}) and {self.target.live('t')})"
        ).scalar_one())

    # --- apply ----------------------------------------------------------------------------------------
    def merge(self, *, full: bool) -> MergeOutcome:
        """Applies the run-level rules, then deletions and the upsert; returns what happened.

        Only a full read can tell that a key is gone or that an unchanged child lost its parent; other
        runs delete only the keys the source reported (`add_deleted_keys`).
        """
        self._analyze_stage()
        self._reject_duplicate_keys()
        self._reject_missing_parents()
        if full:
            self._plan_deletions()
        self._reject_unique_clashes()
        outcome = MergeOutcome()
        rebuilds = self.target.indexes_for_initial_load(self.connection) if self.initial_load else []
        if self.initial_load:
            for constraint in self.foreign_keys:
                self._execute(f"alter table {self.target.name} drop constraint {quote(constraint.name)}")
            for rebuild in rebuilds:
                self._execute(rebuild.drop)
        outcome.deleted, outcome.withdrawn = self._apply_deletions()
        self._vacate_moving_unique_values()
        accepted = self._execute(f"select count(*) from {quote(self.stage)} s where {self._accepted('s')}").scalar_one()
        outcome.created, outcome.updated = self._upsert()
        outcome.unchanged = int(accepted) - outcome.created - outcome.updated
        for rebuild in rebuilds:
            self._execute(str(rebuild.create.compile(dialect=self.connection.dialect)))
        if self.initial_load:
            self._execute(f"analyze {self.target.name} ({_columns(self._planned_columns())})")
            for constraint in self.foreign_keys:
                self._execute(str(sa.schema.AddConstraint(constraint).compile(dialect=self.connection.dialect)))
        for position, rule, message in self._execute(
            f"select {POSITION}, rule, message from {quote(self.rejects)} order by {POSITION}, rule"
        ):
            outcome.rejected.setdefault(int(position), {})[rule] = message
        return outcome

    def _planned_columns(self) -> list[str]:
        """The target columns later runs select and join on: the business key, the unique values and the
        live-row column. ANALYZE of these alone is what the planner needs after an initial load (PostgreSQL
        manual, ANALYZE: `column_name`, "the name of a specific column to analyze; defaults to all columns").
        Every column of the benchmark's 150-field file took 4.5-5.2 s at 50,000 rows, these 74-78 ms;
        autovacuum analyzes the rest later."""
        names = [*self.key, *(name for unique in self.spec.unique for name in unique)]
        planned = [self.target.column(name) for name in dict.fromkeys(names)]
        return [*planned, DELETED_AT] if self.target.owned_by_project else planned

    def accepted_among(self, positions: Sequence[int]) -> set[int]:
        """Which of these read positions were loaded or found unchanged (not rejected)."""
        if not positions:
            return set()
        rows = self._execute(
            f"select s.{POSITION} from {quote(self.stage)} s where s.{POSITION} = any(%(positions)s) "
            f"and {self._accepted('s')}",
            {"positions": list(positions)},
        )
        return {int(row[0]) for row in rows}

    def _apply_deletions(self) -> tuple[int, int]:
        if self.target.keeps_deleted:
            return 0, 0
        gone = f"(select distinct on ({_columns(self.key)}) * from {quote(self.deletions)})"
        rows = self._execute(self.target.delete(gone, self._match(self.key, "d"), "%(run)s"),
                             {"run": self.sync_run_id}).fetchall()
        withdrawn = sum(1 for (reason,) in rows if reason == "parent no longer live")
        return len(rows), withdrawn

    def _vacate_moving_unique_values(self) -> None:
        """Rows about to take another unique value leave the live set first, inside this transaction.

        PostgreSQL checks a unique index row by row, not at the end of the statement, so a swap in one
        upsert would collide with itself; the upsert makes these rows live again with their new values.
        """
        if self.initial_load and self.target.owned_by_project:
            return
        stage, target = quote(self.stage), self.target
        for unique in self.spec.unique:
            moving = (f"exists (select 1 from {stage} s where {self._match(self.key, 's')} and {self._accepted('s')} "
                      f"and ({target.columns(unique, 't')}) is distinct from ({_columns(unique, 's.')})) "
                      f"and {target.live('t')}")
            if not target.owned_by_project:
                moving = (f"({moving}) or (not {target.live('t')} and ({target.columns(unique, 't')}) in "
                          f"(select {_columns(unique, 's.')} from {stage} s where {self._accepted('s')}))")
            for statement in target.vacate(unique, moving):
                self._execute(statement)

    def _upsert(self) -> tuple[int, int]:
        """Inserts new rows, updates changed, revived or vacated ones; returns (created, updated)."""
        stage, target = quote(self.stage), self.target
        written = target.written
        names = _columns(name for name, _ in written)
        key = [target.column(k) for k in self.key]
        values = [name for name, _ in written if name not in key]
        resolved = (f"select {', '.join(f'{expression} as {quote(name)}' for name, expression in written)} "
                    f"from {stage} s{target.stage_joins} where {self._accepted('s')}")
        changed = f"select {names} from ({resolved}) r"
        if not self.initial_load:
            same = (f" and ({_columns(values, 't.')}) is not distinct from ({_columns(values, 'r.')})"
                    if values else "")
            match = " and ".join(f"t.{quote(k)} = r.{quote(k)}" for k in key)
            changed += f" where not exists (select 1 from {target.name} t where {match} and {target.live('t')}{same})"
        audit_names, audit_values = target.insert_audit("%(run)s")
        insert_names = ", ".join([names, *map(quote, audit_names)])
        insert_values = ", ".join([names, *audit_values])
        if self.initial_load:  # nothing to conflict with: no row of the spec existed and duplicates are rejected
            inserted = self._execute(
                f"insert into {target.name} ({insert_names}) select {insert_values} from ({changed}) s",
                {"run": self.sync_run_id}).rowcount
            return int(inserted), 0
        updates = ", ".join([*(f"{quote(c)} = excluded.{quote(c)}" for c in values), *filter(None, [target.revive()])])
        conflict = f"do update set {updates}" if updates else "do nothing"
        row = self._execute(
            f"with changed as (insert into {target.name} ({insert_names}) "
            f"select {insert_values} from ({changed}) s "
            f"on conflict ({_columns(key)}) {conflict} "
            f"returning (xmax = 0) as inserted) "
            f"select count(*) filter (where inserted), count(*) filter (where not inserted) from changed",
            {"run": self.sync_run_id},
        ).one()
        return int(row[0]), int(row[1])
