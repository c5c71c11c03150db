"""Fills the AS400 stand-in with realistic data at any size, with a controlled share of bad records.

Generation is vectorised (numpy) and loaded with COPY, so millions of rows take seconds. The result is
deterministic for a given seed. `seed_as400` returns a manifest of every bad record it planted (table,
key, kind), which the tests compare with what the sync quarantined.
"""

from __future__ import annotations

import argparse
import io
import os
from dataclasses import dataclass, field

import numpy as np
import psycopg2

from erp_sandbox.as400.schema import create_schema

WAREHOUSES = np.array(["001", "002", "010", "020", "100", "200", "300", "400", "500", "600"])
CLASSES = np.array(["FAST", "HARD", "ELEC", "PLMB", "TOOL", "PANT", "GARD", "AUTO"])
UOMS = np.array(["EA", "BX", "CS", "KG", "LB", "FT"])
WORDS = np.array(
    ["STEEL", "BOLT", "HEX", "WASHER", "COPPER", "PIPE", "VALVE", "BRASS", "ELBOW", "CABLE", "WIRE", "PVC",
     "HINGE", "HANDLE", "DRILL", "BIT", "SAW", "BLADE", "LAMP", "SWITCH", "SOCKET", "GLUE", "TAPE", "NUT"]
)
MEASURE_TYPES = np.array(["LEN", "WID", "HGT", "WGT"])
MEASURE_UNITS = {"LEN": "CM", "WID": "CM", "HGT": "CM", "WGT": "KG"}
PRICE_LISTS = np.array(["BASE", "WHSL", "RETL"])


@dataclass
class SeedManifest:
    """What was generated: row counts per table and the bad records planted, by kind."""

    rows: dict[str, int] = field(default_factory=dict)
    bad: dict[str, dict[str, list[tuple[str, ...]]]] = field(default_factory=dict)

    def add_bad(self, table: str, kind: str, keys: list[tuple[str, ...]]) -> None:
        if keys:
            self.bad.setdefault(table, {}).setdefault(kind, []).extend(keys)

    def bad_keys(self, table: str) -> set[tuple[str, ...]]:
        return {key for keys in self.bad.get(table, {}).values() for key in keys}

    def summary(self) -> str:
        parts = []
        for table, count in self.rows.items():
            kinds = ", ".join(f"{kind}={len(keys)}" for kind, keys in self.bad.get(table, {}).items())
            parts.append(f"{table}: {count} rows" + (f" (bad: {kinds})" if kinds else ""))
        return "; ".join(parts)


def to_cyymmdd(years: np.ndarray, months: np.ndarray, days: np.ndarray) -> np.ndarray:
    return (years - 1900) * 10000 + months * 100 + days


def random_dates(rng: np.random.Generator, n: int, start_year: int, end_year: int) -> np.ndarray:
    """Valid CYYMMDD dates between two years."""
    start = np.datetime64(f"{start_year}-01-01")
    span = (np.datetime64(f"{end_year}-12-31") - start).astype(int)
    dates = start + rng.integers(0, span, n).astype("timedelta64[D]")
    years = dates.astype("datetime64[Y]").astype(int) + 1970
    months = dates.astype("datetime64[M]").astype(int) % 12 + 1
    days = (dates - dates.astype("datetime64[M]")).astype(int) + 1
    return to_cyymmdd(years, months, days)


def random_times(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 24, n) * 10000 + rng.integers(0, 60, n) * 100 + rng.integers(0, 60, n)


def _pick(rng: np.random.Generator, n: int, share: float, exclude: set[int] | None = None) -> np.ndarray:
    """Distinct row positions for one kind of bad record."""
    count = round(n * share)
    if count == 0:
        return np.array([], dtype=int)
    candidates = np.setdiff1d(np.arange(n), np.array(sorted(exclude or ()), dtype=int))
    return np.sort(rng.choice(candidates, size=min(count, len(candidates)), replace=False))


def _copy(cur: psycopg2.extensions.cursor, table: str, columns: dict[str, np.ndarray]) -> int:
    """COPYs columns (numpy arrays of equal length) into a quoted stand-in table."""
    names = list(columns)
    n = len(next(iter(columns.values())))
    buffer = io.StringIO()
    rows = zip(*(columns[name].astype(str) for name in names), strict=True)
    buffer.write("".join("\t".join(row) + "\n" for row in rows))
    buffer.seek(0)
    quoted = ", ".join(f'"{name}"' for name in names)
    schema, name = table.split(".")
    cur.copy_expert(f'copy "{schema}"."{name}" ({quoted}) from stdin', buffer)
    return n


def _descriptions(rng: np.random.Generator, n: int) -> np.ndarray:
    first, second, third = (WORDS[rng.integers(0, len(WORDS), n)] for _ in range(3))
    sizes = rng.integers(1, 100, n).astype(str)
    return np.char.add(np.char.add(np.char.add(np.char.add(first, " "), second), " "), np.char.add(third, " ")) + sizes


def seed_as400(
    owner_url: str,
    products: int = 200,
    warehouses: int = 3,
    bad_share: float = 0.02,
    seed: int = 42,
    inventory_only: bool = False,
) -> SeedManifest:
    """Replaces the stand-in's data with a generated data set and returns its manifest."""
    rng = np.random.default_rng(seed)
    manifest = SeedManifest()
    create_schema(owner_url)
    item_numbers = np.char.add("ITM", np.char.zfill(np.arange(1, products + 1).astype(str), 9))
    skus = np.char.add("SKU-", np.char.zfill((np.arange(1, products + 1) * 7919 % 10**9).astype(str), 10))
    conn = psycopg2.connect(owner_url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                'truncate "PRODUCTLIB"."PRODUCTS", "PRODUCTLIB"."MEASUREMENTS", "PRODUCTLIB"."PRICING", '
                '"INVENTORYLIB"."INVENTORY"'
            )
            bad_products: set[int] = set()
            if not inventory_only:
                bad_products = _seed_products(cur, rng, manifest, item_numbers, skus, bad_share)
                _seed_measurements(cur, rng, manifest, item_numbers, bad_products, bad_share)
                _seed_pricing(cur, rng, manifest, item_numbers, bad_products, bad_share)
            else:
                _copy_products_plain(cur, rng, manifest, item_numbers, skus)
            _seed_inventory(cur, rng, manifest, item_numbers, bad_products, warehouses, bad_share)
        with conn.cursor() as cur:
            conn.autocommit = True
            cur.execute('analyze "PRODUCTLIB"."PRODUCTS"')
            cur.execute('analyze "INVENTORYLIB"."INVENTORY"')
    finally:
        conn.close()
    return manifest


def _copy_products_plain(cur, rng, manifest, item_numbers, skus) -> None:
    n = len(item_numbers)
    manifest.rows["PRODUCTLIB.PRODUCTS"] = _copy(
        cur,
        "PRODUCTLIB.PRODUCTS",
        {
            "ITEMNO": item_numbers,
            "ITEMDESC": _descriptions(rng, n),
            "SKU": skus,
            "ITEMCLS": CLASSES[rng.integers(0, len(CLASSES), n)],
            "UOM": UOMS[rng.integers(0, len(UOMS), n)],
            "ITEMSTS": np.where(rng.random(n) < 0.95, "A", "I"),
            "CRTDAT": random_dates(rng, n, 1995, 2024),
            "CHGDAT": random_dates(rng, n, 2024, 2025),
            "CHGTIM": random_times(rng, n),
        },
    )


def _seed_products(cur, rng, manifest, item_numbers, skus, bad_share) -> set[int]:
    n = len(item_numbers)
    descriptions = _descriptions(rng, n)
    created = random_dates(rng, n, 1995, 2024)
    created[rng.random(n) < 0.05] = 0  # "no date" is legal for the creation date
    changed, changed_time = random_dates(rng, n, 2024, 2025), random_times(rng, n)
    skus = skus.copy()
    share = bad_share / 4
    used: set[int] = set()
    blank = _pick(rng, n, share, used)
    used |= set(blank.tolist())
    descriptions = descriptions.astype(object)
    descriptions[blank] = ""
    bad_date = _pick(rng, n, share, used)
    used |= set(bad_date.tolist())
    created[bad_date] = 1251341  # month 13
    duplicate = _pick(rng, n, share, used | {0})
    skus[duplicate] = skus[duplicate - 1]
    bad_time = _pick(rng, n, share, used | set(duplicate.tolist()))
    used |= set(bad_time.tolist())
    changed_time[bad_time] = 256199
    # A SKU held by two otherwise valid products is rejected for both (neither silently wins).
    valid = np.setdiff1d(np.arange(n), np.array(sorted(used), dtype=int))
    _, inverse, counts = np.unique(skus[valid], return_inverse=True, return_counts=True)
    duplicate = valid[counts[inverse] > 1]
    used |= set(duplicate.tolist())
    for kind, positions in (
        ("blank_description", blank),
        ("impossible_date", bad_date),
        ("duplicate_sku", duplicate),
        ("impossible_time", bad_time),
    ):
        manifest.add_bad("PRODUCTLIB.PRODUCTS", kind, [(item_numbers[i],) for i in positions])
    manifest.rows["PRODUCTLIB.PRODUCTS"] = _copy(
        cur,
        "PRODUCTLIB.PRODUCTS",
        {
            "ITEMNO": item_numbers,
            "ITEMDESC": descriptions.astype(str),
            "SKU": skus,
            "ITEMCLS": CLASSES[rng.integers(0, len(CLASSES), n)],
            "UOM": UOMS[rng.integers(0, len(UOMS), n)],
            "ITEMSTS": np.where(rng.random(n) < 0.95, "A", "I"),
            "CRTDAT": created,
            "CHGDAT": changed,
            "CHGTIM": changed_time,
        },
    )
    return used


def _orphan_items(positions: np.ndarray) -> list[str]:
    """Item numbers that no product has."""
    return [f"ORPHAN{position:09d}" for position in positions]


def _children_of(bad_products: set[int], parent_positions: np.ndarray) -> np.ndarray:
    return np.isin(parent_positions, np.array(sorted(bad_products), dtype=int))


def _seed_measurements(cur, rng, manifest, item_numbers, bad_products, bad_share) -> None:
    n_items = len(item_numbers)
    parents = np.repeat(np.arange(n_items), len(MEASURE_TYPES))
    types = np.tile(MEASURE_TYPES, n_items)
    n = len(parents)
    values = np.round(rng.uniform(0.1, 250.0, n), 4)
    items = item_numbers[parents].astype(object)
    used: set[int] = set(np.nonzero(_children_of(bad_products, parents))[0].tolist())
    manifest.add_bad(
        "PRODUCTLIB.MEASUREMENTS", "parent_rejected", [(items[i], types[i]) for i in sorted(used)]
    )
    negative = _pick(rng, n, bad_share / 2, used)
    used |= set(negative.tolist())
    values[negative] = -values[negative]
    orphan = _pick(rng, n, bad_share / 2, used)
    items[orphan] = _orphan_items(orphan)
    manifest.add_bad("PRODUCTLIB.MEASUREMENTS", "negative_measure", [(items[i], types[i]) for i in negative])
    manifest.add_bad("PRODUCTLIB.MEASUREMENTS", "orphan", [(items[i], types[i]) for i in orphan])
    manifest.rows["PRODUCTLIB.MEASUREMENTS"] = _copy(
        cur,
        "PRODUCTLIB.MEASUREMENTS",
        {
            "ITEMNO": items.astype(str),
            "MEASTYP": types,
            "MEASVAL": values,
            "MEASUOM": np.vectorize(MEASURE_UNITS.get)(types),
            "CHGDAT": random_dates(rng, n, 2024, 2025),
            "CHGTIM": random_times(rng, n),
        },
    )


def _seed_pricing(cur, rng, manifest, item_numbers, bad_products, bad_share) -> None:
    n_items = len(item_numbers)
    parents = np.repeat(np.arange(n_items), len(PRICE_LISTS))
    lists = np.tile(PRICE_LISTS, n_items)
    n = len(parents)
    effective = random_dates(rng, n, 2020, 2024)
    expires = np.where(rng.random(n) < 0.7, 0, random_dates(rng, n, 2026, 2028))
    prices = np.round(rng.uniform(0.5, 900.0, n), 4)
    items = item_numbers[parents].astype(object)
    used: set[int] = set(np.nonzero(_children_of(bad_products, parents))[0].tolist())
    manifest.add_bad(
        "PRODUCTLIB.PRICING", "parent_rejected", [(items[i], lists[i], str(effective[i])) for i in sorted(used)]
    )
    negative = _pick(rng, n, bad_share / 3, used)
    used |= set(negative.tolist())
    prices[negative] = -prices[negative]
    inverted = _pick(rng, n, bad_share / 3, used)
    used |= set(inverted.tolist())
    expires[inverted] = effective[inverted] - 10000  # expires a year before it starts
    bad_date = _pick(rng, n, bad_share / 3, used)
    effective[bad_date] = 1240230 + np.arange(len(bad_date)) % 2  # 30 and 31 February
    for kind, positions in (("negative_price", negative), ("expiry_before_start", inverted),
                            ("impossible_date", bad_date)):
        manifest.add_bad("PRODUCTLIB.PRICING", kind, [(items[i], lists[i], str(effective[i])) for i in positions])
    manifest.rows["PRODUCTLIB.PRICING"] = _copy(
        cur,
        "PRODUCTLIB.PRICING",
        {
            "ITEMNO": items.astype(str),
            "PRCLST": lists,
            "EFFDAT": effective,
            "EXPDAT": expires,
            "UNITPRC": prices,
            "CURCDE": np.where(rng.random(n) < 0.8, "USD", "EUR"),
            "CHGDAT": random_dates(rng, n, 2024, 2025),
            "CHGTIM": random_times(rng, n),
        },
    )


def _seed_inventory(cur, rng, manifest, item_numbers, bad_products, warehouses, bad_share) -> None:
    n_items = len(item_numbers)
    parents = np.repeat(np.arange(n_items), warehouses)
    whse = np.tile(WAREHOUSES[:warehouses], n_items)
    n = len(parents)
    on_hand = np.round(rng.uniform(0, 5000, n), 3)
    allocated = np.round(on_hand * rng.uniform(0, 0.5, n), 3)
    on_order = np.round(rng.uniform(0, 1000, n), 3)
    changed = random_dates(rng, n, 2024, 2025)
    items = item_numbers[parents].astype(object)
    used: set[int] = set(np.nonzero(_children_of(bad_products, parents))[0].tolist())
    manifest.add_bad("INVENTORYLIB.INVENTORY", "parent_rejected", [(items[i], whse[i]) for i in sorted(used)])
    negative = _pick(rng, n, bad_share / 3, used)
    used |= set(negative.tolist())
    on_hand[negative] = -on_hand[negative] - 1
    bad_date = _pick(rng, n, bad_share / 3, used)
    used |= set(bad_date.tolist())
    changed[bad_date] = 1250000 + 1399  # month 13, day 99
    orphan = _pick(rng, n, bad_share / 3, used)
    items[orphan] = _orphan_items(orphan)
    for kind, positions in (("negative_quantity", negative), ("impossible_date", bad_date), ("orphan", orphan)):
        manifest.add_bad("INVENTORYLIB.INVENTORY", kind, [(items[i], whse[i]) for i in positions])
    manifest.rows["INVENTORYLIB.INVENTORY"] = _copy(
        cur,
        "INVENTORYLIB.INVENTORY",
        {
            "ITEMNO": items.astype(str),
            "WHSE": whse,
            "ONHAND": on_hand,
            "ALLOC": allocated,
            "ONORD": on_order,
            "UOM": UOMS[rng.integers(0, len(UOMS), n)],
            "BIN": np.char.add("B", np.char.zfill(rng.integers(0, 99999, n).astype(str), 5)),
            "LOTCTL": np.where(rng.random(n) < 0.2, "Y", "N"),
            "CHGDAT": changed,
            "CHGTIM": random_times(rng, n),
        },
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m erp_sandbox.as400.seed", description=__doc__)
    parser.add_argument("--owner-url", default=os.environ.get("AS400_SANDBOX_OWNER_URL"))
    parser.add_argument("--products", type=int, default=200)
    parser.add_argument("--warehouses", type=int, default=3)
    parser.add_argument("--bad-share", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--inventory-only", action="store_true", help="clean products + inventory (benchmarks)")
    args = parser.parse_args(argv)
    if not args.owner_url:
        parser.error("AS400_SANDBOX_OWNER_URL is not set (run scripts/setup first) and --owner-url not given")
    manifest = seed_as400(args.owner_url, args.products, args.warehouses, args.bad_share, args.seed,
                          args.inventory_only)
    print(manifest.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
