"""The emulated 4D structure: dataclasses, attribute types, value conversion and PostgreSQL DDL.

One PostgreSQL table per dataclass, one column per storage attribute (same, case-sensitive name), plus
internal bookkeeping columns that 4D keeps outside the record: ``_e_stamp`` (``__STAMP``) and
``_e_modified`` (``__TIMESTAMP``). Tracked tables also have the real ``__GlobalStamp`` field.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

GLOBAL_STAMP = "__GlobalStamp"
DELETED_RECORDS = "__DeletedRecords"
META_TABLE = "__legacy4d_meta"

PG_TYPES: dict[str, str] = {
    "long": "integer",
    "long64": "bigint",
    "word": "smallint",
    "string": "text",
    "number": "double precision",
    "bool": "boolean",
    "date": "date",
    "duration": "bigint",
}
NUMERIC_TYPES = frozenset({"long", "long64", "word", "number", "duration"})
INTEGER_TYPES = frozenset({"long", "long64", "word", "duration"})


@dataclass(frozen=True)
class Attribute:
    """One catalog attribute; relations are N->1 ``relatedEntity`` attributes backed by a foreign key."""

    name: str
    type: str
    kind: str = "storage"
    indexed: bool = False
    foreign_key: str | None = None

    @property
    def is_relation(self) -> bool:
        return self.kind == "relatedEntity"


@dataclass(frozen=True)
class DataClass:
    """One dataclass; ``hidden`` attributes exist in the data file but are not exposed to REST (4D's "Expose as
    REST resource" unchecked on the field): absent from the catalog and from entities, refused in requests."""

    name: str
    table_number: int
    key: str
    attributes: tuple[Attribute, ...]
    tracked: bool = True
    hidden: frozenset[str] = frozenset()
    by_name: dict[str, Attribute] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {a.name: a for a in self.attributes})

    @property
    def storage(self) -> list[Attribute]:
        return [a for a in self.attributes if not a.is_relation]

    @property
    def relations(self) -> list[Attribute]:
        return [a for a in self.attributes if a.is_relation]

    @property
    def key_attribute(self) -> Attribute:
        return self.by_name[self.key]

    @property
    def exposed(self) -> list[Attribute]:
        return [a for a in self.attributes if a.name not in self.hidden]

    def attribute(self, name: str) -> Attribute | None:
        """An attribute a REST request may name (hidden ones are unknown to REST)."""
        return None if name in self.hidden else self.by_name.get(name)


def _dc(
    name: str, number: int, key: str, *attrs: Attribute, tracked: bool = True, hidden: tuple[str, ...] = (),
) -> DataClass:
    key_attr = Attribute(key, attrs[0].type, indexed=True)
    rest = attrs[1:]
    stamp = (Attribute(GLOBAL_STAMP, "long64", indexed=True),) if tracked else ()
    storage = tuple(a for a in rest if not a.is_relation)
    relations = tuple(a for a in rest if a.is_relation)
    return DataClass(name, number, key, (key_attr, *storage, *stamp, *relations), tracked, frozenset(hidden))


def _a(name: str, type_: str, indexed: bool = False) -> Attribute:
    return Attribute(name, type_, indexed=indexed)


def _rel(name: str, target: str, foreign_key: str) -> Attribute:
    return Attribute(name, target, kind="relatedEntity", foreign_key=foreign_key)


DATACLASSES: dict[str, DataClass] = {
    dc.name: dc
    for dc in (
        _dc(
            "Products", 1, "ProductID", _a("ProductID", "long"),
            _a("ProductName", "string"), _a("Description", "string"), _a("SKU", "string", True),
            _a("Category", "string"), _a("Price", "number"), _a("Cost", "number"), _a("TaxRate", "number"),
            _a("IsPurchased", "bool"), _a("IsManufactured", "bool"), _a("CreatedDate", "date"),
        ),
        _dc(
            "Customers", 2, "CustomerID", _a("CustomerID", "long"),
            _a("CustomerName", "string"), _a("Email", "string"), _a("Phone", "string"), _a("Street", "string"),
            _a("City", "string"), _a("PostalCode", "string"), _a("Country", "string"),
            _a("CreditLimit", "number"), _a("IsActive", "bool"), _a("CreatedDate", "date"),
        ),
        _dc(
            "Orders", 3, "OrderID", _a("OrderID", "long"),
            _a("CustomerID", "long", True), _a("OrderDate", "date"), _a("OrderTime", "duration"),
            _a("DeliveryDate", "date"), _a("Status", "string"), _a("TotalAmount", "number"),
            _a("Currency", "string"), _rel("customer", "Customers", "CustomerID"),
        ),
        _dc(
            "Invoices", 4, "InvoiceID", _a("InvoiceID", "long"),
            _a("InvoiceNumber", "string"), _a("OrderID", "long", True), _a("InvoiceDate", "date"),
            _a("DueDate", "date"), _a("Amount", "number"), _a("TaxAmount", "number"), _a("IsPaid", "bool"),
            _rel("order", "Orders", "OrderID"),
        ),
        _dc(
            "Inventory", 5, "InventoryID", _a("InventoryID", "long"),
            _a("ProductID", "long", True), _a("Warehouse", "string"), _a("QuantityOnHand", "number"),
            _a("QuantityReserved", "number"), _a("ReorderLevel", "number"), _a("LastCountDate", "date"),
            _rel("product", "Products", "ProductID"),
        ),
        _dc(
            "BillOfMaterials", 6, "BomID", _a("BomID", "long"),
            _a("ParentProductID", "long", True), _a("ComponentProductID", "long", True),
            _a("Quantity", "number"), _a("Unit", "string"),
            _rel("parentProduct", "Products", "ParentProductID"),
            _rel("componentProduct", "Products", "ComponentProductID"),
        ),
        # A dataclass the project does not sync (no spec): what `erp-sync scaffold --source legacy_4d Suppliers`
        # starts from, with every attribute type the emulator knows and a relation.
        _dc(
            "Suppliers", 8, "SupplierID", _a("SupplierID", "long"),
            _a("SupplierName", "string"), _a("Email", "string"), _a("CreditLimit", "number"),
            _a("IsActive", "bool"), _a("FirstOrderDate", "date"), _a("CallBackTime", "duration"),
            _a("Rating", "word"), _a("TurnoverCents", "long64"), _a("PreferredProductID", "long", True),
            _rel("preferredProduct", "Products", "PreferredProductID"),
        ),
        # DOC https://developer.4d.com/docs/ORDA/global-stamp documents exactly __PrimaryKey (Text), __Stamp
        # (Int64, "global stamp just before the deletion"), __TableName (Text) and __TableNumber (Long); the table's
        # own primary key is not documented, so the emulator keeps it out of REST altogether.
        _dc(
            DELETED_RECORDS, 7, "ID", _a("ID", "long64"),
            _a("__PrimaryKey", "string"), _a("__Stamp", "long64", True), _a("__TableName", "string", True),
            _a("__TableNumber", "long"),
            tracked=False, hidden=("ID",),
        ),
    )
}


def get_dataclass(name: str) -> DataClass | None:
    return DATACLASSES.get(name)


def qi(name: str) -> str:
    """Quote an identifier taken from the fixed catalog (never from a request)."""
    return '"' + name.replace('"', '""') + '"'


# --- DDL ---------------------------------------------------------------------------------------

def ddl_statements() -> list[str]:
    """Idempotent schema creation."""
    stmts = [
        f"CREATE TABLE IF NOT EXISTS {qi(META_TABLE)} (id integer PRIMARY KEY CHECK (id = 1), "
        "global_stamp bigint NOT NULL, uniqid text NOT NULL)",
        f"INSERT INTO {qi(META_TABLE)} (id, global_stamp, uniqid) "
        "VALUES (1, 1, upper(md5(random()::text))) ON CONFLICT (id) DO NOTHING",
    ]
    for dc in DATACLASSES.values():
        cols = []
        for attr in dc.storage:
            pg_type = PG_TYPES[attr.type]
            if attr.name == dc.key:
                ident = " GENERATED BY DEFAULT AS IDENTITY" if dc.name == DELETED_RECORDS else ""
                cols.append(f"{qi(attr.name)} {pg_type}{ident} PRIMARY KEY")
            elif attr.name == GLOBAL_STAMP:
                cols.append(f"{qi(attr.name)} bigint NOT NULL DEFAULT 0")
            else:
                cols.append(f"{qi(attr.name)} {pg_type}")
        cols += ["_e_stamp integer NOT NULL DEFAULT 1", "_e_modified timestamptz NOT NULL DEFAULT now()"]
        stmts.append(f"CREATE TABLE IF NOT EXISTS {qi(dc.name)} ({', '.join(cols)})")
        for attr in dc.storage:
            if attr.indexed and attr.name != dc.key:
                stmts.append(
                    f"CREATE INDEX IF NOT EXISTS {qi(f'{dc.name}_{attr.name}_idx')} "
                    f"ON {qi(dc.name)} ({qi(attr.name)})"
                )
    return stmts


BACKUP_PREFIX = "__backup_"


def drop_statements() -> list[str]:
    names = [*DATACLASSES, META_TABLE]
    return [f"DROP TABLE IF EXISTS {qi(prefix + name)} CASCADE" for prefix in ("", BACKUP_PREFIX) for name in names]


# --- values ------------------------------------------------------------------------------------

_BANG_DATE = re.compile(r"^(\d{1,2})!(\d{1,2})!(\d{1,4})$")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ].*)?$")
_EMPTY_DATES = frozenset({"", "0!0!0", "00!00!0000", "0000-00-00", "00-00-00"})
_CLOCK = re.compile(r"^(\d{1,3}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?$")


def parse_date_text(text: str) -> dt.date | None:
    """Accept ``YYYY-MM-DD``, ISO date-time and 4D's ``d!m!yyyy``; empty 4D dates give None."""
    text = text.strip()
    if text in _EMPTY_DATES:
        return None
    match = _BANG_DATE.match(text)
    if match:
        day, month, year = (int(g) for g in match.groups())
        return dt.date(year, month, day)
    match = _ISO_DATE.match(text)
    if match:
        year, month, day = (int(g) for g in match.groups())
        return dt.date(year, month, day)
    raise ValueError(f"not a date: {text!r}")


def format_4d_date(value: dt.date | None) -> str:
    """4D's unpadded ``d!m!yyyy``; an empty date is ``0!0!0``."""
    if value is None:
        return "0!0!0"
    return f"{value.day}!{value.month}!{value.year}"


def coerce_value(attr: Attribute, value: object) -> object:
    """Convert a JSON/Python value to what the column stores; ValueError names the attribute on mismatch."""
    if value is None:
        return None
    kind = attr.type
    try:
        if kind == "string":
            if isinstance(value, (dict, list)):
                raise TypeError
            return value if isinstance(value, str) else str(value)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, (int, float)) and value in (0, 1):
                return bool(value)
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            raise TypeError
        if kind == "date":
            if isinstance(value, dt.datetime):
                return value.date()
            if isinstance(value, dt.date):
                return value
            if isinstance(value, str):
                return parse_date_text(value)
            raise TypeError
        if kind == "duration":
            if isinstance(value, dt.time):
                return ((value.hour * 60 + value.minute) * 60 + value.second) * 1000 + value.microsecond // 1000
            if isinstance(value, str):
                match = _CLOCK.match(value.strip())
                if match:
                    h, m, s, ms = (int(g or 0) for g in match.groups())
                    return ((h * 60 + m) * 60 + s) * 1000 + ms
        if kind in NUMERIC_TYPES:
            if isinstance(value, (bool, dict, list)):
                raise TypeError
            number = float(value) if isinstance(value, str) else value
            if not isinstance(number, (int, float)):
                raise TypeError
            if kind in INTEGER_TYPES:
                if float(number) != int(number):
                    raise TypeError
                return int(number)
            return float(number)
    except (TypeError, ValueError, OverflowError):
        pass
    raise ValueError(f"value {value!r} does not fit attribute {attr.name} of type {kind}")


def catalog_attribute(dc: DataClass, attr: Attribute, position: int) -> dict:
    """The ``$catalog/$all`` description of one attribute."""
    if attr.is_relation:
        return {
            "name": attr.name, "kind": "relatedEntity", "scope": "public", "type": attr.type,
            "path": attr.type, "foreignKey": attr.foreign_key,
        }
    entry: dict = {"name": attr.name, "kind": "storage", "fieldPos": position, "scope": "public"}
    if attr.indexed:
        entry["indexed"] = True
    entry["type"] = attr.type
    if attr.name == dc.key:
        entry["identifying"] = True
    if attr.name == GLOBAL_STAMP:
        entry["readOnly"] = True
    return entry


def catalog_dataclass(dc: DataClass) -> dict:
    attributes = []
    position = 0
    for attr in dc.attributes:
        if not attr.is_relation:
            position += 1
        if attr.name not in dc.hidden:
            attributes.append(catalog_attribute(dc, attr, position))
    return {
        "name": dc.name,
        "className": dc.name,
        "collectionName": f"{dc.name}Selection",
        "tableNumber": dc.table_number,
        "scope": "public",
        "dataURI": f"/rest/{dc.name}",
        "attributes": attributes,
        "key": [] if dc.key in dc.hidden else [{"name": dc.key}],
    }
