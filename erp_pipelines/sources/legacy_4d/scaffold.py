"""A new 4D dataclass's draft spec, read from `GET /rest/$catalog/{dataClass}` (`erp-sync scaffold --source
legacy_4d Suppliers`).

The catalog gives each attribute's name, kind (storage, relatedEntity, …) and type, the dataclass's `key` and
whether `__GlobalStamp` is exposed (DOC https://developer.4d.com/docs/REST/$catalog; data change tracking, DOC
https://developer.4d.com/docs/ORDA/global-stamp). It does not say which attributes are mandatory, nor the
precision of a `number` (a Real): both are marked for review.
"""

from __future__ import annotations

from collections.abc import Sequence

from erp_pipelines.core.draft import AUDIT_NAMES, DraftColumn, DraftError, Import, TableDraft, snake_case, unique_names
from erp_pipelines.sources.legacy_4d.adapter import Legacy4DSource
from erp_pipelines.sources.legacy_4d.tables import GLOBAL_STAMP

CORE = "erp_pipelines.core.decoders"
FOUR_D = "erp_pipelines.sources.legacy_4d.decoders"
FIELDS = "erp_pipelines.core.fields"
STAMP = GLOBAL_STAMP.columns[0]
"""`__GlobalStamp`: exposed on a dataclass whose data change tracking is on."""
NUMBER_PRECISION = (18, 4)
"""What a 4D `number` (Real, a double) is read as until someone who knows the data says otherwise."""
# 4D attribute type → (decoder, SQL type, model dtype, imports, review note or "")
_TYPES: dict[str, tuple[str, str, str, tuple[Import, ...], str]] = {
    "string": ("Text()", "sa.Text()", "TEXT", ((CORE, "Text"), (FIELDS, "TEXT")), ""),
    "long": ("Integer()", "sa.BigInteger()", "INT", ((CORE, "Integer"), (FIELDS, "INT")), ""),
    "long64": ("Integer()", "sa.BigInteger()", "INT", ((CORE, "Integer"), (FIELDS, "INT")), ""),
    "word": ("Integer()", "sa.BigInteger()", "INT", ((CORE, "Integer"), (FIELDS, "INT")), ""),
    "bool": ("Boolean()", "sa.Boolean()", "BOOL", ((CORE, "Boolean"), (FIELDS, "BOOL")), ""),
    "date": ("FourDDate()", "sa.Date()", "DATE", ((FOUR_D, "FourDDate"), (FIELDS, "DATE")), ""),
    "duration": ("FourDTime()", "sa.Time()", "TIME", ((FOUR_D, "FourDTime"), (FIELDS, "TIME")),
                 "a 4D Time (duration) read as a time of day: a duration of 24 h or more would be rejected"),
    "number": (f"Decimal{NUMBER_PRECISION}", f"sa.Numeric{NUMBER_PRECISION}", f"decimal{NUMBER_PRECISION}",
               ((CORE, "Decimal"), (FIELDS, "decimal")),
               f"4D number is a Real (a double): guessed Decimal{NUMBER_PRECISION}; set the precision and scale "
               "the values have"),
}


def _column(attribute: dict, target: str, is_key: bool) -> DraftColumn | None:
    name, kind = str(attribute["name"]), str(attribute.get("type", ""))
    known = _TYPES.get(kind)
    if known is None:
        return None
    decoder, sql_type, dtype, imports, review = known
    if dtype == "TEXT":
        field = "text(required=True)" if is_key else "text()"
        imports = (*imports, (FIELDS, "text"))
    else:
        field = f"pa_pandas.Field(nullable={not is_key})"
    return DraftColumn(target, (name,), decoder, sql_type, dtype, field, not is_key, f"{name} ({kind})", imports,
                       (review,) if review else ())


def draft_dataclass(source: Legacy4DSource, name: str, key: Sequence[str] = ()) -> TableDraft:
    """The draft of dataclass `name`; `key` overrides the catalog's `key` (an attribute name)."""
    description = source.describe(name)
    attributes = [a for a in description.get("attributes", []) if isinstance(a, dict) and a.get("name")]
    storage = [a for a in attributes if a.get("kind", "storage") == "storage"]
    keys = list(key) or [str(k.get("name")) for k in description.get("key", []) if isinstance(k, dict)]
    if len(keys) != 1 or keys[0] not in {str(a["name"]) for a in storage}:
        raise DraftError(f"4D {name}: the catalog names no single primary key attribute ({keys or 'none'}): name "
                         "it with --key ATTRIBUTE")
    tracked = any(a["name"] == STAMP for a in storage)
    data = [a for a in storage if a["name"] != STAMP]
    targets = unique_names(["legacy_id" if a["name"] == keys[0] else snake_case(str(a["name"])) or "field"
                            for a in data], set(AUDIT_NAMES))
    columns: list[DraftColumn] = []
    ignored: list[str] = []
    review: list[str] = []
    for attribute, target in zip(data, targets, strict=True):
        proposed = _column(attribute, target, attribute["name"] == keys[0])
        if proposed is None:
            ignored.append(str(attribute["name"]))
            review.append(f"{attribute['name']} is a 4D {attribute.get('type')}: no decoder reads it yet, so it "
                          "is ignored")
        else:
            columns.append(proposed)
    review.append("4D's catalog does not say which attributes are mandatory: every column but the key is nullable; "
                  "tighten the model where the data must be present")
    for relation in (a for a in attributes if a.get("kind") == "relatedEntity"):
        review.append(f"relation {relation['name']} → {relation.get('type')} (via {relation.get('foreignKey')}): if "
                      f"{relation.get('type')} is synced, declare a ForeignKey onto its spec so orphans are rejected")
    notes = [f"Business key: {'--key' if key else 'the dataclass key'} {keys[0]} ($catalog/{name})."]
    if tracked:
        notes.append(f"{STAMP} is exposed: incremental syncs read changes by stamp, deletions from "
                     "__DeletedRecords.")
    else:
        review.append(f"{STAMP} is not exposed (data change tracking off in 4D's structure): every sync "
                      "reads the whole dataclass")
    entity = f"erp_{snake_case(name)}"
    review.append(f"entity and target table named {entity} after the dataclass; rename before the first migration "
                  "if the application calls it otherwise")
    return TableDraft(
        source_system="legacy_4d", source_table=name, entity=entity, target_table=entity,
        model_name="".join(part.capitalize() for part in entity.split("_")) + "Model",
        description=f"{name} of the 4D ERP, scaffolded from its catalog.", business_key=("legacy_id",),
        columns=tuple(columns), change_tracking="GLOBAL_STAMP" if tracked else None,
        ignored_source_columns=tuple(ignored), review=tuple(review), notes=tuple(notes),
        imports=(("erp_pipelines.sources.legacy_4d.tables", "GLOBAL_STAMP"),) if tracked else ())
