"""Field helpers shared by the pandera models, so every text column gets the same hygiene rules."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pandera.pandas as pa_pandas
import pyarrow as pa
from pandera.extensions import register_check_method

from erp_pipelines.core.decoders import CONTROL_CHARACTERS

TEXT = pd.ArrowDtype(pa.string())
DATE = pd.ArrowDtype(pa.date32())
TIME = pd.ArrowDtype(pa.time64("us"))
TIMESTAMP = pd.ArrowDtype(pa.timestamp("us"))
BOOL = pd.ArrowDtype(pa.bool_())
INT = pd.ArrowDtype(pa.int64())



def decimal(precision: int, scale: int) -> pd.ArrowDtype:
    return pd.ArrowDtype(pa.decimal128(precision, scale))


@register_check_method(statistics=["flag"])
def no_control_characters(series: pd.Series, *, flag: bool) -> pd.Series:
    """Text must not carry control characters: C0 (but tab, LF, CR), DEL and C1 (decoders.CONTROL_CHARACTERS)."""
    if not flag:
        return series.notna() | True
    return ~series.str.contains(CONTROL_CHARACTERS, regex=True).fillna(False).astype(bool)


@register_check_method(statistics=["flag"])
def no_replacement_characters(series: pd.Series, *, flag: bool) -> pd.Series:
    """Text must not carry U+FFFD: it stands where a converter upstream already lost a character (invalid
    bytes, an unpaired surrogate), and loading it would make the loss permanent."""
    if not flag:
        return series.notna() | True
    return ~series.str.contains("\ufffd", regex=False).fillna(False).astype(bool)


@register_check_method(statistics=["flag"])
def not_blank(series: pd.Series, *, flag: bool) -> pd.Series:
    """Required text: NULL, empty and all-blank values are refused."""
    return series.notna() & (series.str.strip().str.len() > 0) if flag else series.notna() | True


def text(*, required: bool = False, max_length: int | None = None, nullable: bool = True, **kwargs: Any) -> Any:
    """A text field: no control characters or lost characters, optionally required (not blank) and bounded."""
    checks: dict[str, Any] = {"no_control_characters": True, "no_replacement_characters": True}
    if required:
        checks["not_blank"] = True
    if max_length is not None:
        kwargs["str_length"] = {"max_value": max_length}
    return pa_pandas.Field(nullable=nullable and not required, **checks, **kwargs)
