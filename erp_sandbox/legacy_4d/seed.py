"""Deterministic, realistic ERP data for the 4D emulator, with a controlled share of bad records.

``python -m erp_sandbox.legacy_4d.seed --store-url URL --products 100000 [--seed 42] [--bad-share 0.03] [--reset]``
Rows go in with COPY, so 100k products (~800k rows in all tables) take seconds, not minutes.
Every row gets a distinct ``__GlobalStamp`` in insertion order and the datastore stamp ends one above.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import io
import os
import random
import sys
import time
from collections.abc import Iterable, Iterator

from .schema import DATACLASSES, GLOBAL_STAMP, META_TABLE, qi
from .store import LegacyStore

BAD_KINDS = (
    "blank_name", "blank_sku", "duplicate_sku", "negative_price", "empty_date", "control_chars",
    "injection_text", "oversized_text", "orphan_order", "orphan_inventory",
)
INJECTION_TEXTS = ("'; DROP TABLE x; --", '") OR 1=1 --', "Robert'); DROP TABLE Products;--", "1' OR '1'='1")
CATEGORIES = ("Bearings", "Fasteners", "Hydraulics", "Electronics", "Packaging", "Tools", "Pumps", "Valves",
              "Sensors", "Cables", "Motors", "Filters")
ADJECTIVES = ("Compact", "Heavy-Duty", "Precision", "Standard", "Premium", "Industrial", "Miniature", "Sealed",
              "Stainless", "Galvanized", "Reinforced", "Modular")
NOUNS = ("Bearing", "Bolt", "Coupling", "Valve", "Pump", "Sensor", "Bracket", "Gasket", "Relay", "Switch", "Hose",
         "Motor", "Filter", "Cable", "Clamp", "Housing")
LAST_NAMES = ("Müller", "Schmidt", "O'Reilly", "Dubois", "Rossi", "García", "Nowak", "Johansson", "D'Angelo",
              "Smith", "Weber", "Fischer", "van der Berg", "Kowalski", "Novák", "Martin", "Lefèvre", "Jensen")
COMPANY_SUFFIXES = ("GmbH", "AG", "Ltd", "S.A.", "B.V.", "& Co. KG", "Inc.", "SARL", "S.r.l.", "Oy")
STREETS = ("Hauptstraße", "Bahnhofstraße", "Industrieweg", "Rue de la Paix", "Via Roma", "High Street",
           "Gewerbepark", "Kanalstraße")
PLACES = (("Berlin", "DE", "10{:03d}"), ("Hamburg", "DE", "20{:03d}"), ("München", "DE", "80{:03d}"),
          ("Wien", "AT", "1{:03d}"), ("Zürich", "CH", "8{:03d}"), ("Paris", "FR", "75{:03d}"),
          ("Milano", "IT", "20{:03d}"), ("Amsterdam", "NL", "10{:02d} AB"), ("London", "GB", "EC{:d} 1AA"),
          ("Warszawa", "PL", "00-{:03d}"))
WAREHOUSES = ("MAIN", "NORTH", "SOUTH", "EAST", "WEST")
UNITS = ("pcs", "kg", "m", "l", "set")
STATUSES = (("OPEN", 20), ("SHIPPED", 30), ("INVOICED", 40), ("CANCELLED", 10))
CURRENCIES = (("EUR", 80), ("USD", 12), ("CHF", 8))
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_MODIFIED_BASE = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
_CHUNK_ROWS = 50_000


def _copy_field(value: object) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, str):
        return value.translate(_COPY_ESCAPES)
    return str(value)


def _weighted(rng: random.Random, choices: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]


def _day(rng: random.Random, start: dt.date, end: dt.date) -> dt.date:
    return start + dt.timedelta(days=rng.randrange((end - start).days))


class _Seeder:
    """Generates the tables in dependency order and streams them into COPY."""

    def __init__(self, store: LegacyStore, products: int, seed: int, bad_share: float) -> None:
        self.store = store
        self.rng = random.Random(seed)
        self.products = products
        self.customers = max(1, products // 2)
        per_kind = max(1, round(products * bad_share / len(BAD_KINDS))) if bad_share > 0 else 0
        self.bad = dict.fromkeys(BAD_KINDS, per_kind)
        self.stamp = 1
        self.counts: dict[str, int] = {}
        self.manufactured: list[int] = []
        self.shipped_orders: list[tuple[int, dt.date, dt.date | None, float, str]] = []

    def _tracked(self, rows: Iterable[tuple]) -> Iterator[tuple]:
        """Append __GlobalStamp, __STAMP and __TIMESTAMP bookkeeping to each generated row."""
        for row in rows:
            yield (*row, self.stamp, 1, _MODIFIED_BASE + dt.timedelta(seconds=self.stamp))
            self.stamp += 1

    def _copy(self, cur: object, dataclass: str, rows: Iterable[tuple]) -> None:
        dc = DATACLASSES[dataclass]
        names = [a.name for a in dc.storage if a.name != GLOBAL_STAMP] + [GLOBAL_STAMP, "_e_stamp", "_e_modified"]
        sql = f"COPY {qi(dataclass)} ({', '.join(qi(n) for n in names)}) FROM STDIN"
        buffer: list[str] = []
        count = 0
        for row in self._tracked(rows):
            buffer.append("\t".join(_copy_field(v) for v in row))
            count += 1
            if len(buffer) >= _CHUNK_ROWS:
                cur.copy_expert(sql, io.StringIO("\n".join(buffer) + "\n"))  # type: ignore[attr-defined]
                buffer.clear()
        if buffer:
            cur.copy_expert(sql, io.StringIO("\n".join(buffer) + "\n"))  # type: ignore[attr-defined]
        self.counts[dataclass] = count

    def _pick(self, population: int, kinds: tuple[str, ...]) -> dict[int, str]:
        """Disjoint random row numbers (1-based) for each bad kind that lives in this table."""
        wanted = sum(self.bad[k] for k in kinds)
        chosen = self.rng.sample(range(1, population + 1), min(wanted, population))
        marks: dict[int, str] = {}
        for kind in kinds:
            for _ in range(self.bad[kind]):
                if chosen:
                    marks[chosen.pop()] = kind
        for kind in kinds:
            self.bad[kind] = sum(1 for k in marks.values() if k == kind)
        return marks

    def product_rows(self) -> list[tuple]:
        rng = self.rng
        rows: list[tuple] = []
        duplicates: list[int] = []
        marks = self._pick(self.products, (
            "blank_name", "blank_sku", "duplicate_sku", "negative_price", "empty_date", "control_chars",
            "injection_text", "oversized_text",
        ))
        for pid in range(1, self.products + 1):
            category = rng.choice(CATEGORIES)
            name = f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {rng.randint(10, 999)}"
            description = f"{name} for {category.lower()} applications, series {rng.choice('ABCDEFGH')}"
            sku = f"{category[:3].upper()}-{pid:07d}"
            price = round(rng.uniform(0.5, 2500.0), 2)
            cost = round(price * rng.uniform(0.35, 0.85), 2)
            manufactured = rng.random() < 0.3
            purchased = not manufactured or rng.random() < 0.2
            created: dt.date | None = _day(rng, dt.date(2005, 1, 1), dt.date(2025, 1, 1))
            kind = marks.get(pid)
            if kind == "blank_name":
                name = rng.choice(("", "   "))
            elif kind == "blank_sku":
                sku = rng.choice(("", " "))
            elif kind == "duplicate_sku" and self.products > 1:
                duplicates.append(pid)
            elif kind == "negative_price":
                price = -round(rng.uniform(1.0, 500.0), 2)
            elif kind == "empty_date":
                created = None
            elif kind == "control_chars":
                name = f"{name}\x01\x07\x1b[0m\ttab"
                description = f"line1\r\nline2\x0b\x0c{description}"
            elif kind == "injection_text":
                name = rng.choice(INJECTION_TEXTS)
                description = rng.choice(INJECTION_TEXTS) + " <script>alert(1)</script>"
            elif kind == "oversized_text":
                name = (name + " ") * 150
                description = "X" * 20_000
            if manufactured:
                self.manufactured.append(pid)
            rows.append((pid, name, description, sku, category, price, cost, rng.choice((19.0, 7.0, 0.0)),
                         purchased, manufactured, created))
        for pid in duplicates:
            other = rows[pid if pid < self.products else pid - 2]
            rows[pid - 1] = (*rows[pid - 1][:3], other[3], *rows[pid - 1][4:])
        # A SKU held by two products is rejected for both: the unmarked partners are bad too.
        holders = collections.Counter(row[3] for row in rows)
        self.bad["duplicate_sku"] += sum(
            1 for pid, row in enumerate(rows, 1) if holders[row[3]] > 1 and pid not in marks)
        return rows

    def customer_rows(self) -> Iterator[tuple]:
        rng = self.rng
        for cid in range(1, self.customers + 1):
            last = rng.choice(LAST_NAMES)
            company = f"{last} {rng.choice(NOUNS)}technik {rng.choice(COMPANY_SUFFIXES)}"
            slug = "".join(ch for ch in last.lower() if ch.isalnum() and ch.isascii()) or "customer"
            city, country, postal = rng.choice(PLACES)
            yield (cid, company, f"{slug}.{cid}@example.com", f"+{rng.randint(30, 49)} {rng.randint(100, 999)} "
                   f"{rng.randint(100000, 9999999)}", f"{rng.choice(STREETS)} {rng.randint(1, 250)}", city,
                   postal.format(rng.randint(1, 99)), country, float(rng.choice((5000, 10000, 25000, 50000, 100000))),
                   rng.random() < 0.9, _day(rng, dt.date(2000, 1, 1), dt.date(2025, 1, 1)))

    def order_rows(self) -> Iterator[tuple]:
        rng = self.rng
        total = self.products * 2
        marks = self._pick(total, ("orphan_order",))
        for oid in range(1, total + 1):
            customer = self.customers + 1000 + oid if marks.get(oid) else rng.randint(1, self.customers)
            ordered = _day(rng, dt.date(2015, 1, 1), dt.date(2025, 6, 1))
            status = _weighted(rng, STATUSES)
            delivered = ordered + dt.timedelta(days=rng.randint(1, 14)) if status in ("SHIPPED", "INVOICED") else None
            amount = round(rng.uniform(10.0, 12000.0), 2)
            if delivered:
                self.shipped_orders.append((oid, ordered, delivered, amount, status))
            yield (oid, customer, ordered, rng.randint(7 * 3600, 19 * 3600) * 1000, delivered, status, amount,
                   _weighted(rng, CURRENCIES))

    def invoice_rows(self) -> Iterator[tuple]:
        rng = self.rng
        for iid, (oid, _ordered, delivered, amount, status) in enumerate(self.shipped_orders, start=1):
            invoiced = delivered or _ordered
            yield (iid, f"INV-{invoiced.year}-{iid:07d}", oid, invoiced, invoiced + dt.timedelta(days=30), amount,
                   round(amount * 0.19, 2), status == "INVOICED" and rng.random() < 0.7)

    def inventory_rows(self) -> Iterator[tuple]:
        rng = self.rng
        iid = 0
        for pid in range(1, self.products + 1):
            for warehouse in rng.sample(WAREHOUSES, rng.randint(1, 3)):
                iid += 1
                on_hand = float(rng.randint(0, 5000))
                yield (iid, pid, warehouse, on_hand, float(rng.randint(0, int(on_hand))), float(rng.randint(0, 500)),
                       _day(rng, dt.date(2023, 1, 1), dt.date(2025, 6, 1)))
        for n in range(self.bad["orphan_inventory"]):
            iid += 1
            yield (iid, self.products + 1 + n, rng.choice(WAREHOUSES), 10.0, 0.0, 5.0, dt.date(2024, 1, 1))

    def bom_rows(self) -> Iterator[tuple]:
        rng = self.rng
        bid = 0
        for parent in self.manufactured:
            if self.products < 2:
                break
            components = {rng.randint(1, self.products) for _ in range(rng.randint(2, 5))} - {parent}
            for component in sorted(components):
                bid += 1
                yield (bid, parent, component, float(rng.randint(1, 20)), rng.choice(UNITS))

    def run(self) -> None:
        with self.store.transaction() as cur:
            self._copy(cur, "Products", self.product_rows())
            self._copy(cur, "Customers", self.customer_rows())
            self._copy(cur, "Orders", self.order_rows())
            self._copy(cur, "Invoices", self.invoice_rows())
            self._copy(cur, "Inventory", self.inventory_rows())
            self._copy(cur, "BillOfMaterials", self.bom_rows())
            self.counts["__DeletedRecords"] = 0
            cur.execute(f"UPDATE {qi(META_TABLE)} SET global_stamp = %s", (self.stamp,))


def seed_store(
    store_url: str, products: int = 1000, seed: int = 42, bad_share: float = 0.03, reset: bool = False,
) -> dict:
    """Fill an emulator store; without ``reset`` a store that already holds data is left untouched."""
    started = time.monotonic()
    store = LegacyStore(store_url, max_connections=2)
    try:
        if reset:
            store.reset()
        else:
            store.ensure_schema()
            existing = {name: store.count(name) for name in DATACLASSES}
            if any(existing.values()):
                return {"skipped": True, "counts": existing, "bad": {}, "global_stamp": store.global_stamp(),
                        "seconds": round(time.monotonic() - started, 2)}
        seeder = _Seeder(store, products, seed, bad_share)
        seeder.run()
        with store.connection() as conn, conn.cursor() as cur:
            cur.execute("VACUUM (ANALYZE) " + ", ".join(qi(name) for name in DATACLASSES))
        return {"skipped": False, "counts": seeder.counts, "bad": seeder.bad, "global_stamp": seeder.stamp,
                "seconds": round(time.monotonic() - started, 2)}
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Seed the 4D emulator store with deterministic ERP data")
    parser.add_argument("--store-url", default=os.environ.get("LEGACY4D_STORE_URL"))
    parser.add_argument("--products", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--bad-share", type=float, default=0.03)
    parser.add_argument("--reset", action="store_true", help="drop and recreate all tables first")
    args = parser.parse_args(argv)
    if not args.store_url:
        parser.error("--store-url (or LEGACY4D_STORE_URL) is required")
    result = seed_store(args.store_url, products=args.products, seed=args.seed, bad_share=args.bad_share,
                        reset=args.reset)
    counts = " ".join(f"{k}={v}" for k, v in result["counts"].items())
    if result["skipped"]:
        print(f"legacy-4d store already seeded, left unchanged (use --reset): {counts}")
        return 0
    bad = " ".join(f"{k}={v}" for k, v in result["bad"].items())
    print(f"legacy-4d store seeded in {result['seconds']}s: {counts} | bad: {bad} | "
          f"global_stamp={result['global_stamp']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
