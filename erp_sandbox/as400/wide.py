"""A wide AS400 master file for the benchmark: `BENCHLIB.ITEMMAST`, 150 fields as a real item master has them.

CHAR fields of many widths (blank-padded), packed DECIMAL and zoned NUMERIC amounts, CYYMMDD dates in
DECIMAL(7,0) (0 = no date), Y/N flags, and the CHGDAT/CHGTIM change stamps; key ITEMNO. The layout is
declared once here (`WIDE_FIELDS`): the seed creates the file from it and the benchmark's spec, pandera
model and peers read it from here. The library exists only in the benchmark's stand-in database
(`python -m erp_sandbox.as400.wide --owner-url ... --rows N`), never in the product's catalog.
"""

from __future__ import annotations

import argparse
import io
import os
from dataclasses import dataclass
from typing import Literal

import numpy as np
import psycopg2
import pyarrow as pa
import pyarrow.csv as pa_csv

from erp_sandbox.as400.seed import random_dates, random_times

LIBRARY = "BENCHLIB"
FILE = "ITEMMAST"
KEY = "ITEMNO"

Kind = Literal["char", "packed", "zoned", "date", "flag", "time"]


@dataclass(frozen=True)
class WideField:
    """One field of the wide file: its kind and its length (precision for numbers) and scale."""

    name: str
    kind: Kind
    length: int
    scale: int = 0

    @property
    def ddl(self) -> str:
        if self.kind in ("char", "flag"):
            return f'"{self.name}" char({self.length}) not null default \'\''
        return f'"{self.name}" decimal({self.length}, {self.scale}) not null default 0'


_CHAR_WIDTHS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50)
_DECIMALS = ((5, 0), (7, 2), (9, 2), (11, 3), (11, 4), (13, 2), (15, 5))


def _fields() -> tuple[WideField, ...]:
    fields = [WideField(KEY, "char", 15)]
    fields += [WideField(f"TXT{i:03d}", "char", _CHAR_WIDTHS[i % len(_CHAR_WIDTHS)]) for i in range(60)]
    fields += [WideField(f"PKD{i:03d}", "packed", *_DECIMALS[i % len(_DECIMALS)]) for i in range(30)]
    fields += [WideField(f"ZND{i:03d}", "zoned", *_DECIMALS[i % len(_DECIMALS)]) for i in range(20)]
    fields += [WideField(f"DAT{i:03d}", "date", 7) for i in range(20)]
    fields += [WideField(f"FLG{i:03d}", "flag", 1) for i in range(17)]
    fields += [WideField("CHGDAT", "date", 7), WideField("CHGTIM", "time", 6)]
    return tuple(fields)


WIDE_FIELDS: tuple[WideField, ...] = _fields()
"""150 fields: the key, 60 CHAR, 30 packed, 20 zoned, 20 CYYMMDD dates, 17 flags, CHGDAT and CHGTIM."""


def create_sql(reader: str = "as400_reader") -> str:
    """The library, the file (a zoned field says so in its comment, see schema.py) and the reader's grant."""
    table = f'"{LIBRARY}"."{FILE}"'
    columns = ",\n    ".join(field.ddl for field in WIDE_FIELDS)
    zoned = "".join(f"comment on column {table}.\"{f.name}\" is 'ZONED';" for f in WIDE_FIELDS if f.kind == "zoned")
    return (f'create schema if not exists "{LIBRARY}"; drop table if exists {table};'
            f'create table {table} (\n    {columns},\n    constraint "{FILE}_PK" primary key ("{KEY}"));'
            f'{zoned} grant usage on schema "{LIBRARY}" to {reader}; grant select on {table} to {reader};')


def _values(field: WideField, rng: np.random.Generator, rows: int) -> pa.Array:
    if field.name == KEY:
        return pa.array(np.char.zfill(np.arange(1, rows + 1).astype(str), 10))
    if field.kind == "char":
        alphabet = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 "))
        length = max(1, field.length // 2)
        picked = alphabet[rng.integers(0, len(alphabet), (rows, length))]
        return pa.array(picked.view(f"<U{length}").ravel())
    if field.kind == "flag":
        return pa.array(np.where(rng.random(rows) < 0.5, "Y", "N"))
    if field.kind == "date":
        dates = random_dates(rng, rows, 1995, 2026)
        return pa.array(np.where(rng.random(rows) < 0.1, 0, dates) if field.name != "CHGDAT" else dates)
    if field.kind == "time":
        return pa.array(random_times(rng, rows))
    whole = 10 ** (field.length - field.scale - 1)
    return pa.array(np.round(rng.random(rows) * whole, field.scale))


def seed(owner_url: str, rows: int, seed_value: int = 18) -> int:
    """Recreates the file with `rows` generated records (COPY of CSV built by Arrow)."""
    rng = np.random.default_rng(seed_value)
    data = pa.table({field.name: _values(field, rng, rows) for field in WIDE_FIELDS})
    buffer = io.BytesIO()
    pa_csv.write_csv(data, buffer, pa_csv.WriteOptions(include_header=False, quoting_style="needed"))
    buffer.seek(0)
    with psycopg2.connect(owner_url) as connection, connection.cursor() as cursor:
        cursor.execute(create_sql())
        cursor.copy_expert(f'copy "{LIBRARY}"."{FILE}" from stdin with (format csv)', buffer, size=1 << 20)
    connection = psycopg2.connect(owner_url)
    try:
        connection.autocommit = True
        connection.cursor().execute(f'vacuum analyze "{LIBRARY}"."{FILE}"')
    finally:
        connection.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m erp_sandbox.as400.wide", description=__doc__)
    parser.add_argument("--owner-url", default=os.environ.get("AS400_SANDBOX_OWNER_URL"))
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args(argv)
    print(f"{LIBRARY}.{FILE}: {seed(args.owner_url, args.rows):,} rows, {len(WIDE_FIELDS)} fields")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
