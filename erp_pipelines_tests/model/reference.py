"""The reference model of one synced table: what the sync contract of issue 11 says a run must leave behind.

Plain Python, written from /work/wt/issue11-contract.md and the sources' documented behaviour, never from the
project's decoders or loader (nothing here imports erp_pipelines): the test that owns a source decodes its own
records into `Record`s, and this module applies the contract's rules to them.

Terms (contract): a record's *exact key* is its raw key as the source compares it; its *target key* is the
decoded business key. Rules are numbered as in the contract.
"""

from __future__ import annotations

import decimal
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Key = tuple[Any, ...]


def canonical_number(value: object) -> str | None:
    """A number compared by value, whatever type carried it (10, 10.0, '10.000', Decimal('1E+1'))."""
    if value is None:
        return None
    if isinstance(value, bool):
        return f"not a number: {value!r}"
    try:
        number = decimal.Decimal(value if isinstance(value, str) else repr(value) if isinstance(value, float)
                                 else str(value))
    except decimal.InvalidOperation:
        return f"not a number: {value!r}"
    return str(number.normalize()) if number.is_finite() else str(number)


def canonical_flag(value: object) -> bool | str | None:
    """A boolean, also when a batch carried it as text."""
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    return {"true": True, "false": False}.get(text, f"not a boolean: {value!r}")


def canonical_raw(values: Mapping[str, Any], kinds: Mapping[str, Callable[[Any], Any]]) -> str:
    """One text per raw record: every column the model knows, each in its canonical form (contract: quarantine
    de-duplication compares canonical source values, independent of the types a batch inferred)."""
    return json.dumps({name: kinds[name](values.get(name, "<absent>")) for name in sorted(kinds)}, sort_keys=True)


@dataclass(frozen=True)
class Record:
    """One source record as the model decodes it."""

    exact_key: Key
    target_key: Key | None  # None: the key itself does not decode (blank)
    values: dict[str, Any] | None  # the decoded target row; None when a column is refused
    faults: frozenset[str]  # target columns whose value is refused (rule prefix `<column>:`)
    raw: str  # canonical raw record
    parent_key: Key | None = None  # target key of the parent row (children)
    unique_value: Any = None  # the value of the unique column (SKU), when there is one and it decodes


@dataclass
class TargetRow:
    values: dict[str, Any]
    live: bool = True


@dataclass
class Outcome:
    """What the contract says one run did (rule 1's counts) and why each rejected record was rejected."""

    processed: int = 0
    written: int = 0  # created + updated
    unchanged: int = 0
    rejected: int = 0
    deleted: int = 0
    required_rules: dict[tuple[Key, str], set[str]] = field(default_factory=dict)  # (exact key, raw) -> prefixes
    uncertain_live: set[Key] = field(default_factory=set)  # target keys either outcome of which the contract allows


@dataclass
class TableModel:
    """The application table and the open quarantine of one entity, as the contract predicts them."""

    entity: str
    parent: str | None = None
    unique_column: str | None = None
    target: dict[Key, TargetRow] = field(default_factory=dict)
    quarantine: dict[Key, set[str]] = field(default_factory=dict)  # exact key -> canonical raws of open entries

    def live(self, key: Key | None) -> bool:
        row = self.target.get(key) if key is not None else None
        return row is not None and row.live

    def live_rows(self) -> dict[Key, dict[str, Any]]:
        return {key: row.values for key, row in self.target.items() if row.live}

    def apply(
        self,
        read: list[Record],
        mode: str,
        *,
        parent_live: Callable[[Key], bool] | None = None,
        deleted_at_source: Iterable[Key] = (),
    ) -> Outcome:
        """Applies one successful run that read `read` (rules 1-7, 10); `deleted_at_source` are the target keys
        a 4D incremental run learns from `__DeletedRecords`."""
        outcome = Outcome(processed=len(read))
        rules: dict[int, set[str]] = {i: {f"{column}:" for column in record.faults} for i, record in enumerate(read)}
        copies = Counter(record.target_key for record in read if record.target_key is not None)
        for i, record in enumerate(read):  # rule 3: every copy of a key read twice, in any batch
            if record.target_key is not None and copies[record.target_key] > 1:
                rules[i].add("duplicate_key")
        missing_parent: set[int] = set()
        if self.parent and parent_live is not None:  # rule 5
            for i, record in enumerate(read):
                if record.parent_key is not None and not parent_live(record.parent_key):
                    missing_parent.add(i)
                    if not rules[i]:
                        rules[i].add(f"missing_parent:{self.parent}")
        withdrawn: set[Key] = set()
        if mode == "full" and self.parent:  # rule 5: a full sync withdraws live children of a missing parent
            for i in missing_parent:
                key = read[i].target_key
                if key is None or not self.live(key):
                    continue
                if rules[i] == {f"missing_parent:{self.parent}"}:
                    withdrawn.add(key)
                else:  # rejected for its own fault too: the contract does not say whether it is withdrawn
                    outcome.uncertain_live.add(key)
        appearing = {record.target_key for record in read if record.target_key is not None}
        gone: set[Key] = set()
        if mode == "full":  # rule 6
            gone = {key for key in self.live_rows() if key not in appearing}
        gone |= {key for key in deleted_at_source if self.live(key) and key not in appearing}
        self._converge_unique(read, rules, withdrawn | gone)
        for i, record in enumerate(read):
            if rules[i]:
                continue
            row = self.target.get(record.target_key)  # type: ignore[arg-type]
            if row is not None and row.live and row.values == record.values:
                outcome.unchanged += 1
            else:
                outcome.written += 1
                self.target[record.target_key] = TargetRow(dict(record.values or {}))  # type: ignore[index]
            self.quarantine.pop(record.exact_key, None)  # rule 7: loaded or found unchanged
        for i, record in enumerate(read):
            if not rules[i]:
                continue
            outcome.rejected += 1
            outcome.required_rules.setdefault((record.exact_key, record.raw), set()).update(rules[i])
            self.quarantine.setdefault(record.exact_key, set()).add(record.raw)  # rule 2, once per raw content
        for key in withdrawn | gone:
            self.target[key].live = False
            outcome.deleted += 1
        found = {record.exact_key for record in read}
        if mode in ("full", "replay"):  # rule 7: no record with that exact key any more
            for key in [key for key in self.quarantine if key not in found]:
                del self.quarantine[key]
        for key in deleted_at_source:  # rule 7: deleted at the source and not read again (the exact key: the
            if key not in found:  # models' sources keep a key's target form and exact form alike)
                self.quarantine.pop(key, None)
        return outcome

    def _converge_unique(self, read: list[Record], rules: dict[int, set[str]], leaving: set[Key]) -> None:
        """Rule 4: the unique column judged on the state the run converges to, repeated until stable."""
        if self.unique_column is None:
            return
        rule = f"duplicate_{self.unique_column}"
        while True:
            loading = [i for i in rules if not rules[i]]
            loaded_keys = {read[i].target_key for i in loading}
            untouched = {
                row.values[self.unique_column]
                for key, row in self.target.items()
                if row.live and key not in loaded_keys and key not in leaving
            }
            holders = Counter(read[i].unique_value for i in loading)
            blocked = [i for i in loading if holders[read[i].unique_value] > 1 or read[i].unique_value in untouched]
            if not blocked:
                return
            for i in blocked:
                rules[i].add(rule)
