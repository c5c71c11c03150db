"""Decoders of 4D REST values: `d!m!yyyy` dates and millisecond times."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from erp_pipelines.core.decoders import Decoded, Decoder, as_array, dates_from_parts, to_int64


class FourDDate(Decoder):
    """4D REST date text `d!m!yyyy` (no zero padding); `0!0!0` is the empty date."""

    arrow_type = pa.date32()
    reason = "is not a valid 4D date (d!m!yyyy)"
    _PATTERN = r"^(?P<day>\d{1,2})!(?P<month>\d{1,2})!(?P<year>\d{1,4})$"

    def __call__(self, columns: Sequence[pa.Array]) -> Decoded:
        column = as_array(columns[0])
        if not pa.types.is_string(column.type):
            column = pc.cast(column, pa.string())
        parts = pc.extract_regex(column, self._PATTERN)
        matched = parts.is_valid().to_numpy(zero_copy_only=False)
        numbers = {
            name: pc.cast(pc.fill_null(pc.struct_field(parts, name), "0"), pa.int64()).to_numpy(zero_copy_only=False)
            for name in ("day", "month", "year")
        }
        blank = pc.fill_null(pc.equal(column, ""), True).to_numpy(zero_copy_only=False)
        empty = blank | (matched & (numbers["day"] == 0) & (numbers["month"] == 0) & (numbers["year"] == 0))
        dates, valid = dates_from_parts(numbers["year"], numbers["month"], numbers["day"])
        valid &= matched & ~empty
        invalid = ~valid & ~empty
        return Decoded(pa.array(dates, pa.date32(), mask=~valid), invalid if invalid.any() else None, self.reason)


class FourDTime(Decoder):
    """4D REST time: milliseconds since midnight (`duration`)."""

    arrow_type = pa.time64("us")
    reason = "is not a time of day in milliseconds"

    def __call__(self, columns: Sequence[pa.Array]) -> Decoded:
        numbers, nulls = to_int64(pc.cast(as_array(columns[0]), pa.string()))
        valid = ~nulls & (numbers >= 0) & (numbers < 86_400_000)
        invalid = ~valid & ~as_array(columns[0]).is_null().to_numpy(zero_copy_only=False)
        values = pa.array(np.where(valid, numbers, 0) * 1000, pa.time64("us"), mask=~valid)
        return Decoded(values, invalid if invalid.any() else None, self.reason)
