"""Statements compiled once, run on the driver's own connection (the claim's raw path).

SQLAlchemy spends some 0.1 ms of CPU per statement between `execute` and the
driver (issue 12); on SQLite each driver call is also a hand-off to aiosqlite's
thread. The claim's raw path (HMT_CLAIM_STATEMENTS=raw) compiles its statements
with the engine's own dialect once per shape and keeps what SQLAlchemy would send:
the SQL text, the parameters' order, their values' conversions (the column types'
bind processors: prices as exact text on SQLite, times as UTC text, JSON as text)
and the returned columns' conversions. So the driver receives exactly what
SQLAlchemy's execution would have given it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import TypeEngine

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class Precompiled:
    """One statement as the driver takes it, and how to convert its values."""

    sql: str
    names: tuple[str, ...]  # the parameters, in the driver's positional order
    binds: tuple[Processor, ...]
    fixed: Mapping[str, Any]  # parameters the statement carries itself (`attempts + 1`)
    results: tuple[Processor, ...]

    def params(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        """`values` by name -> the positional parameters, converted as SQLAlchemy would."""
        fixed = self.fixed
        out = []
        for name, process in zip(self.names, self.binds, strict=True):
            value = values[name] if name in values else fixed[name]
            out.append(value if process is None else process(value))
        return tuple(out)

    def row(self, raw: Sequence[Any]) -> tuple[Any, ...]:
        """A returned row, its values converted as SQLAlchemy's result would."""
        return tuple(
            value if process is None else process(value)
            for process, value in zip(self.results, raw, strict=True)
        )


def precompile(
    statement: ClauseElement,
    dialect: Dialect,
    *,
    returns: Sequence[TypeEngine[Any]] = (),
    column_keys: Sequence[str] | None = None,
) -> Precompiled:
    """`statement` compiled for `dialect` (a positional one: qmark or numeric), with the
    types of what it returns, in order."""
    compiled = cast(
        SQLCompiler,
        statement.compile(
            dialect=dialect, column_keys=None if column_keys is None else list(column_keys)
        ),
    )
    if compiled.positiontup is None:
        raise ValueError(f"{dialect.name}: a positional paramstyle is needed")
    names = tuple(compiled.positiontup)
    binds = tuple(_bind(compiled.binds[name].type, dialect) for name in names)
    fixed = {
        name: bind.effective_value for name, bind in compiled.binds.items() if not bind.required
    }
    results = tuple(_result(type_, dialect) for type_ in returns)
    return Precompiled(compiled.string, names, binds, fixed, results)


def _bind(type_: TypeEngine[Any], dialect: Dialect) -> Processor:
    return type_.dialect_impl(dialect).bind_processor(dialect)


def _result(type_: TypeEngine[Any], dialect: Dialect) -> Processor:
    return type_.dialect_impl(dialect).result_processor(dialect, None)
