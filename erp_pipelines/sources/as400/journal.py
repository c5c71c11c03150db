"""Change capture from an IBM i journal through SQL: QSYS2.DISPLAY_JOURNAL windows, read-only, folded per key.

IBM pages (IBM i 7.4/7.5): DISPLAY_JOURNAL table function (rzajq/rzajqudfdisplayjournal), JOURNAL_RECEIVER_INFO
view (rzajqviewjrnrcvinfo), JOURNALED_OBJECTS view (rzajqviewjournaledobjects), "All journal entries by code and
type" (rzaki/rzakijournalfinderall2), Change Journal CHGJRN (sequence numbers may be reset when a receiver is
attached: SEQOPT(*RESET)), Display Journal DSPJRN ("Gaps may exist in the sequence numbers").

* Authority: *USE on the journal, its receivers and the file, *EXECUTE on their libraries; *OBJEXIST on the
  journal is needed only when no object is named, so every window names the file (OBJECT_LIBRARY, OBJECT_NAME:
  system names from QSYS2.SYSTABLES).
* A position is (receiver library, receiver, sequence). Sequence numbers restart when a receiver is attached with
  a reset, so a window never spans receivers: each receiver of the chain (JOURNAL_RECEIVER_INFO, oldest first) is
  read on its own, from the position onwards, in bounded windows (FETCH FIRST n ROWS ONLY) ordered by sequence.
* Record entries (journal code R): PT/PX insert (after image), UB/UP update before/after images (UB only with
  JOURNAL_IMAGES *BOTH), DL delete (the record's image with *BOTH), and the rollback entries BR/UR (before/after
  image of a record updated for rollback) and DR (record deleted for rollback). Applying every entry in order,
  rollback entries included, leaves each record as the committed work left it: a rolled-back cycle is undone by
  its own rollback entries. Within a read the last image per key wins; a deletion is a deletion of that key.
* A key change is an update: its before image (UB, or BR for a rollback) carries the old key at the same relative
  record number (COUNT_OR_RRN), so the old key is deleted. With *AFTER images there is no before image and a
  delete carries no record; the old key is known only when the same RRN was seen earlier in the same read.
  Otherwise it stays until a full sync (`notes()` counts such entries; test-connection warns on *AFTER).
* Commit entries (journal code C) belong to no object, so a read that names its file does not see them (DSPJRN
  FILE: only the entries of the files named). Work of a commit cycle still open when a window is read is applied
  as it stands; if that cycle is later rolled back, its rollback entries undo it at the next run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from erp_pipelines.core.source import InvalidWatermarkError, RecordKey, SourceChange, Watermark, exact_keys
from erp_pipelines.core.spec import TableSpec
from erp_pipelines.sources.as400 import sql
from erp_pipelines.sources.as400.record_image import RecordLayout

AFTER_IMAGES = frozenset({"PT", "PX", "UP", "UR"})
BEFORE_IMAGES = frozenset({"UB", "BR"})
DELETIONS = frozenset({"DL", "DR"})
RECORD_ENTRY_TYPES = ("PT", "PX", "UB", "UP", "DL", "BR", "UR", "DR")
# JOURNAL_RECEIVER_INFO STATUS values whose entries can still be read (SAVED: saved, storage not freed).
READABLE_RECEIVERS = frozenset({"ATTACHED", "ONLINE", "SAVED"})


@dataclass(frozen=True)
class Journal:
    """The journal a file is journaled to, and the file's system names and images (QSYS2.JOURNALED_OBJECTS)."""

    library: str
    name: str
    images: str
    object_library: str
    object_name: str

    def __str__(self) -> str:
        return f"{self.library}/{self.name}"


@dataclass(frozen=True)
class Receiver:
    library: str
    name: str
    status: str
    first_sequence: int | None
    last_sequence: int | None
    attached_at: dt.datetime | None
    detached_at: dt.datetime | None

    def __str__(self) -> str:
        return f"{self.library}/{self.name}"


@dataclass(frozen=True)
class Position:
    """The last journal entry a sync covers; committed with the rows it covers (the run's one transaction)."""

    journal: str
    receiver_library: str
    receiver: str
    sequence: int

    def as_watermark(self) -> Watermark:
        return {"journal": self.journal, "receiver": f"{self.receiver_library}/{self.receiver}",
                "sequence": self.sequence}

    @classmethod
    def from_watermark(cls, spec: TableSpec, watermark: Watermark | None) -> Position | None:
        """The journal position a watermark holds, None for a watermark of change stamps (or none)."""
        if not isinstance(watermark, dict) or "journal" not in watermark:
            return None
        try:
            library, receiver = str(watermark["receiver"]).split("/")
            return cls(str(watermark["journal"]), library, receiver, int(watermark["sequence"]))
        except (KeyError, ValueError, TypeError):
            raise InvalidWatermarkError(
                f"{spec.entity}: the stored watermark {watermark!r} (sync_watermark) is no journal position; "
                "run a full sync to replace it"
            ) from None

    def within(self, receiver: Receiver) -> bool:
        return (receiver.library, receiver.name) == (self.receiver_library, self.receiver)


def receiver_from_row(row: Sequence[Any]) -> Receiver:
    library, name, status, first, last, attached, detached = row
    return Receiver(str(library).strip(), str(name).strip(), str(status or "").strip().upper(),
                    None if first is None else int(first), None if last is None else int(last), attached, detached)


def position_problem(position: Position, chain: Sequence[Receiver]) -> str | None:
    """Why the journal can no longer continue from `position` (a receiver deleted or freed, the chain broken,
    sequence numbers reset under it), or None. Such a gap means a scoped full sync, never a silent hole."""
    at = f"{position.journal} position {position.receiver_library}/{position.receiver} sequence {position.sequence}"
    holding = next((receiver for receiver in chain if position.within(receiver)), None)
    if holding is None:
        return f"journal receiver {position.receiver_library}/{position.receiver} holding the {at} is gone " \
               "(deleted, or the receiver chain was broken)"
    if holding.status not in READABLE_RECEIVERS:
        return f"journal receiver {holding} holding the {at} is {holding.status}: its entries are no longer online"
    later = chain[chain.index(holding) + 1:]
    unreadable = [receiver for receiver in later if receiver.status not in READABLE_RECEIVERS]
    if unreadable:
        return f"journal receiver {unreadable[0]} after the {at} is {unreadable[0].status}"
    last = holding.last_sequence
    if last is not None and position.sequence > last:
        return f"the {at} is past the receiver's last sequence {last} (were sequence numbers reset?)"
    return None


def retention_warning(position: Position, chain: Sequence[Receiver], margin: int) -> str | None:
    """A warning while there is still time: the receiver holding our position is among the `margin` oldest
    retained receivers already detached, so the next receiver clean-up may delete it before the next sync."""
    detached = [receiver for receiver in chain if receiver.status != "ATTACHED"]
    oldest = detached[:margin]
    holding = next((receiver for receiver in oldest if position.within(receiver)), None)
    if holding is None:
        return None
    return (f"journal receiver {holding} still holds the last synced entry (sequence {position.sequence}) and is "
            f"among the {margin} oldest retained receivers of {position.journal}: deleting it before the next sync "
            "forces a full sync")


def end_of_chain(journal: Journal, chain: Sequence[Receiver]) -> Position:
    """The newest position of the journal: where a full read that starts now leaves the next incremental run."""
    attached = next((receiver for receiver in reversed(chain) if receiver.status == "ATTACHED"), chain[-1])
    return Position(str(journal), attached.library, attached.name, attached.last_sequence or 0)


@dataclass(frozen=True)
class Change:
    """The last journal entry of a record: its image (one row), its key, and who made the change, when."""

    record: pa.RecordBatch
    key: RecordKey
    sequence: int
    lineage: tuple[Any, ...]


@dataclass
class FoldedChanges:
    """The net effect of a run of record entries, per record (relative record number): its last image, or gone.

    Per record, not per key: a file without a unique key may hold two records with one key, and both images then
    reach the engine, which rejects every copy of a key read twice, as a full read does. A key is deleted when a
    record lost it (deleted, or its key changed) and no record still holds it at the end of the read."""

    key_columns: list[str]
    records: dict[int, Change] = field(default_factory=dict)
    lost: dict[RecordKey, pa.RecordBatch] = field(default_factory=dict)
    entries: int = 0
    unidentified: int = 0
    """Entries that name no record this read can identify (a delete or key change under *AFTER images)."""

    def apply(self, entries: pa.RecordBatch, records: Sequence[pa.RecordBatch | None]) -> None:
        """Applies one window in journal order. `records[i]` is entry i's record (one row), or None when the
        entry carries none (a delete under *AFTER images)."""
        columns = {name: entries.column(name).to_pylist() for name in (
            "JOURNAL_ENTRY_TYPE", "COUNT_OR_RRN", "SEQUENCE_NUMBER", "ENTRY_TIMESTAMP", "USER_NAME", "JOB_NAME",
            "JOB_USER", "JOB_NUMBER", "PROGRAM_LIBRARY", "PROGRAM_NAME")}
        before: dict[int, tuple[RecordKey, pa.RecordBatch]] = {}
        for index, record in enumerate(records):
            self.entries += 1
            kind = (columns["JOURNAL_ENTRY_TYPE"][index] or "").strip()
            rrn = int(columns["COUNT_OR_RRN"][index] or 0)
            known = self.records.get(rrn)
            if record is None and known is None:
                self.unidentified += 1
                continue
            key = self._key(record) if record is not None else known.key  # type: ignore[union-attr]
            image = record if record is not None else known.record  # type: ignore[union-attr]
            if kind in BEFORE_IMAGES:
                before[rrn] = (key, image)
            elif kind in AFTER_IMAGES:
                old_key, old_image = before.pop(rrn, None) or ((known.key, known.record) if known else (key, image))
                if old_key != key:
                    self.lost[old_key] = old_image.select(self.key_columns)
                self.records[rrn] = Change(image, key, int(columns["SEQUENCE_NUMBER"][index]),
                                           _lineage(columns, index))
            elif kind in DELETIONS:
                self.lost[key] = image.select(self.key_columns)
                self.records.pop(rrn, None)

    def _key(self, record: pa.RecordBatch) -> RecordKey:
        return exact_keys(record, self.key_columns, trailing_blanks_significant=False)[0]

    def upsert_batches(self, rows: int) -> Iterator[pa.RecordBatch]:
        """The last image of every record still there, `rows` at a time, in the order of their last change."""
        ordered = sorted(self.records.values(), key=lambda change: change.sequence)
        for start in range(0, len(ordered), rows):
            yield from _joined([change.record for change in ordered[start:start + rows]])

    def deleted_keys(self) -> pa.RecordBatch | None:
        """The keys no record holds any more, as their source columns. A key whose field was undeliverable cannot
        name a target row and is counted as unidentified instead."""
        held = {change.key for change in self.records.values()}
        gone = [batch for key, batch in self.lost.items() if key not in held]
        if not gone:
            return None
        batches = list(_joined(gone))
        self.unidentified += sum(batch.num_rows for batch in batches[1:])
        return batches[0]

    def lineage(self) -> list[tuple[RecordKey, tuple[Any, ...]]]:
        """Per record still there, the journal entry of its last change: sequence, time, user, job, program."""
        return [(change.key, change.lineage) for change in self.records.values()]


def _lineage(columns: dict[str, list[Any]], index: int) -> tuple[Any, ...]:
    def text(name: str) -> str:
        return (columns[name][index] or "").strip()

    return (int(columns["SEQUENCE_NUMBER"][index]), columns["ENTRY_TIMESTAMP"][index], text("USER_NAME"),
            f"{text('JOB_NUMBER')}/{text('JOB_USER')}/{text('JOB_NAME')}",
            f"{text('PROGRAM_LIBRARY')}/{text('PROGRAM_NAME')}")


def _joined(batches: list[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Runs of one-row batches with one schema, each run as one batch (a row kept with an undeliverable field as
    its bytes has a schema of its own, as the ODBC path hands it over)."""
    run: list[pa.RecordBatch] = []
    for batch in batches:
        if run and batch.schema != run[0].schema:
            yield pa.Table.from_batches(run).combine_chunks().to_batches()[0]
            run = []
        run.append(batch)
    if run:
        yield pa.Table.from_batches(run).combine_chunks().to_batches()[0]


def decode_images(layout: RecordLayout, entries: pa.RecordBatch, columns: list[str]) -> list[pa.RecordBatch | None]:
    """Each entry's record as a one-row batch of the spec's source columns; None for an entry with no record."""
    images, indicators = (entries.column(name) for name in sql.JOURNAL_HEX_COLUMNS)
    present = [index for index, image in enumerate(images.to_pylist()) if image]
    decoded: list[pa.RecordBatch | None] = [None] * entries.num_rows
    if not present:
        return decoded
    taken = pa.array(present, pa.int64())
    rows = [row for batch in layout.decode(images.take(taken), indicators.take(taken), columns)
            for row in (batch.slice(offset, 1) for offset in range(batch.num_rows))]
    for index, row in zip(present, rows, strict=True):
        decoded[index] = row
    return decoded



WindowReader = Callable[[sql.Statement], pa.Table]
KeyReader = Callable[[list[RecordKey]], Iterator[pa.RecordBatch]]


class JournalExtraction:
    """An incremental read through the journal: every receiver from the position on, in bounded windows, folded
    per key; the upserts as raw batches, the deletions as keys, the new position as the watermark."""

    def __init__(self, spec: TableSpec, journal: Journal, chain: Sequence[Receiver], start: Position,
                 layout: RecordLayout, read: WindowReader, *, window: int, batch_rows: int,
                 table_keyword: bool, reread: KeyReader | None = None) -> None:
        """`reread`, for a file with no unique key over the business key: the journal names the keys that
        changed, and their current rows are read from the file by key, so a key held by two records (one of them
        older than this read) reaches the engine twice and is rejected, never overwritten."""
        self._spec = spec
        self._journal = journal
        self._chain = list(chain)
        self._start = start
        self._layout = layout
        self._read = read
        self._window = window
        self._batch_rows = batch_rows
        self._table_keyword = table_keyword
        self._folded = FoldedChanges(spec.source_key_columns)
        self._reread = reread
        self._deleted: pa.RecordBatch | None = None
        self._position = start
        self._receivers_read = 0

    def batches(self) -> Iterator[pa.RecordBatch]:
        holding = next(index for index, receiver in enumerate(self._chain) if self._start.within(receiver))
        for receiver in self._chain[holding:]:
            self._read_receiver(receiver)
        # The end of the newest receiver read, even when none of its entries is this file's: the older receivers
        # can then be deleted without taking the position with them.
        last = self._chain[-1]
        read_there = self._position.sequence if self._position.within(last) else 0
        self._position = Position(str(self._journal), last.library, last.name,
                                  max(read_there, last.last_sequence or 0))
        if self._reread is None:
            yield from self._folded.upsert_batches(self._batch_rows)
            self._deleted = self._folded.deleted_keys()
            return
        yield from self._current_rows()

    def _current_rows(self) -> Iterator[pa.RecordBatch]:
        """The changed keys' rows as the file holds them now; a changed key the file no longer holds is deleted."""
        folded = self._folded
        candidates = {change.key: change.record.select(folded.key_columns) for change in folded.records.values()}
        candidates.update(folded.lost)
        found: set[RecordKey] = set()
        for batch in self._reread(list(candidates)) if candidates else ():
            found.update(exact_keys(batch, folded.key_columns, trailing_blanks_significant=False))
            yield batch
        gone = [batch for key, batch in candidates.items() if key not in found]
        self._deleted = next(_joined(gone), None) if gone else None

    def _read_receiver(self, receiver: Receiver) -> None:
        self._receivers_read += 1
        after = self._start.sequence if self._start.within(receiver) else None
        if after is not None and (receiver.first_sequence is None or after < receiver.first_sequence):
            after = None
        while True:
            entries = self._read(self._statement(receiver, after))
            limit_reached = entries.num_rows >= self._window
            if after is not None:
                sequences = pc.cast(entries.column("SEQUENCE_NUMBER"), pa.int64())
                entries = entries.filter(pc.greater(sequences, after))
            if entries.num_rows:
                batch = entries.combine_chunks().to_batches()[0]
                self._folded.apply(batch, decode_images(self._layout, batch, self._spec.source_columns))
                after = int(pc.max(pc.cast(batch.column("SEQUENCE_NUMBER"), pa.int64())).as_py())
                self._position = Position(str(self._journal), receiver.library, receiver.name, after)
            if not limit_reached:
                return

    def _statement(self, receiver: Receiver, after: int | None) -> sql.Statement:
        """One window: this receiver only (sequence numbers may restart in the next), from `after` (inclusive:
        the entry at the position itself is dropped by the reader), this file only, record entries only."""
        journal = self._journal
        arguments = [("JOURNAL_LIBRARY", journal.library), ("JOURNAL_NAME", journal.name),
                     ("STARTING_RECEIVER_LIBRARY", receiver.library), ("STARTING_RECEIVER_NAME", receiver.name),
                     ("ENDING_RECEIVER_LIBRARY", receiver.library), ("ENDING_RECEIVER_NAME", receiver.name)]
        if after is not None:
            arguments.append(("STARTING_SEQUENCE", str(after)))
        arguments += [("JOURNAL_CODES", "R"), ("JOURNAL_ENTRY_TYPES", " ".join(RECORD_ENTRY_TYPES)),
                      ("OBJECT_LIBRARY", journal.object_library), ("OBJECT_NAME", journal.object_name),
                      ("OBJECT_OBJTYPE", "*FILE"), ("OBJECT_MEMBER", "*ALL")]
        statement = sql.journal_entries(arguments, self._window, table_keyword=self._table_keyword)
        sql.guard_journal_read(statement.sql)
        return statement

    def watermark(self) -> Watermark | None:
        return self._position.as_watermark()

    def deleted_keys(self) -> pa.RecordBatch | None:
        return self._deleted

    def notes(self) -> dict[str, object]:
        notes: dict[str, object] = {"journal": str(self._journal), "journal_images": self._journal.images,
                                    "journal_entries": self._folded.entries,
                                    "journal_receivers_read": self._receivers_read}
        if self._folded.unidentified:
            notes["journal_entries_without_key"] = self._folded.unidentified
        if self._reread is not None:
            notes["journal_keys_reread"] = "the file has no unique key over the business key"
        return notes

    def changes(self) -> list[SourceChange]:
        """Per record read, the journal entry of its last change: time, user, job, program and position."""
        return [SourceChange(key, at, user, job, program, f"{self._journal} sequence {sequence}")
                for key, (sequence, at, user, job, program) in self._folded.lineage()]
