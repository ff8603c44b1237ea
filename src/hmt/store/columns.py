"""Column types that keep their meaning on both backends: exact prices, aware UTC times."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, Dialect, Numeric, String
from sqlalchemy.types import TypeDecorator, TypeEngine

# 13 digits of rupees and 7 decimals: the finest divisor (CDS) is 10**7.
PRICE_PRECISION, PRICE_SCALE = 20, 7


class Price(TypeDecorator[Decimal]):
    """A price in rupees: NUMERIC on PostgreSQL, decimal text on SQLite.

    SQLite has no exact decimal type (NUMERIC affinity turns 1600.05 into a
    binary float), so there the value is kept as its decimal text, which other
    tools writing 1600.05 also produce. Python only ever sees `Decimal`.
    """

    impl = Numeric(PRICE_PRECISION, PRICE_SCALE, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(40))
        return dialect.type_descriptor(Numeric(PRICE_PRECISION, PRICE_SCALE, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError("prices are never floats: pass a Decimal")
        value = Decimal(value)
        return canonical(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        # str() of whatever SQLite hands back: text stays exact, and a number
        # another tool stored is read through its shortest decimal repr.
        return value if isinstance(value, Decimal) else Decimal(str(value))


def canonical(value: Decimal) -> str:
    """The one text form of a decimal price: no exponent, no trailing zeros."""
    text = format(value.normalize(), "f")
    return text if text != "-0" else "0"


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is aware UTC on the way in and on the way out.

    PostgreSQL stores timestamptz; SQLite stores text without an offset, which
    this type writes as UTC and reads back as UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError(f"timestamps must be timezone-aware, got {value!r}")
        moment: datetime = value.astimezone(UTC)
        return moment.replace(tzinfo=None) if dialect.name == "sqlite" else moment

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        # A string when another tool wrote it, e.g. SQLite's CURRENT_TIMESTAMP.
        moment: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
