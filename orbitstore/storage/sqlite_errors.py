"""sqlite3, translated: the one place where sqlite3 exceptions become ours.

Every SQLite connection in ``storage/`` (the node's store, its view tables, scratch
stores, the read-only query connection) is made by :func:`connect` and is a
:class:`Connection`, whose cursors are :class:`Cursor`. These subclasses wrap every call
that can reach the file — ``execute``, ``executemany``, ``executescript``, each fetch
(a cursor reads pages lazily, so a damaged page can surface on the 600th row), iteration,
``commit``, ``close``, ``serialize`` — and turn an ``sqlite3.Error`` into:

- :class:`~orbitstore.errors.StorageCorruptedError` for ``SQLITE_CORRUPT`` ("database
  disk image is malformed"), ``SQLITE_NOTADB`` ("file is not a database") and stored
  text that is no longer UTF-8;
- :class:`~orbitstore.errors.StorageError` for everything else (I/O, full disk, busy);

always ``raise ... from exc``, so the cause is kept. Code above the adapter therefore
never sees sqlite3, whichever statement, table or view it went through.

The store's hot write path (one append: seven statements) cannot afford three Python
calls per statement: :meth:`Connection.guarded` hands out one plain cursor of the
connection inside a guard that translates the same way, once for the whole block.

A connection that runs user SQL (the query executor) marks the statements that came
from the user with :meth:`Connection.user_statement`; an error of such a statement that
is the user's fault (bad SQL, a refused table or function, a wrong parameter count, the
time budget) becomes :class:`~orbitstore.errors.QueryError` (``QueryLimitError`` for the
budget) instead. Corruption and I/O errors stay storage errors even then.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from orbitstore.errors import (
    OrbitstoreError,
    QueryError,
    QueryLimitError,
    StorageCorruptedError,
    StorageError,
)

_CORRUPT = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})
# Primary result codes that mean "the disk or the system failed", never the SQL text.
_SYSTEM = frozenset(
    {
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_PROTOCOL,
        sqlite3.SQLITE_NOLFS,
        sqlite3.SQLITE_PERM,
    }
)


def _damaged(exc: sqlite3.Error) -> bool:
    """SQLite's corruption codes, or text that is no longer UTF-8 (sqlite3 itself raises
    that one, without a code, when it converts a damaged TEXT value)."""
    return primary_code(exc) in _CORRUPT or "could not decode to utf-8" in str(exc).lower()


def primary_code(exc: sqlite3.Error) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def translate(exc: sqlite3.Error, where: str) -> StorageError:
    """The storage error for an sqlite3 error raised while working on ``where``."""
    name = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
    if _damaged(exc):
        return StorageCorruptedError(
            f"{where} is damaged ({exc}); run `orbitstore check` (see docs/failure-model.md)",
            sqlite=name,
        )
    return StorageError(f"{where}: {exc}", sqlite=name)


class _Guard:
    """``with conn.guarded() as cur:``: the connection's plain cursor, errors translated.
    Stateless, so one instance per connection serves every (nested) use."""

    __slots__ = ("_conn", "_cursor")

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._cursor: sqlite3.Cursor | None = None

    def __enter__(self) -> sqlite3.Cursor:
        cursor = self._cursor
        if cursor is None:
            try:
                cursor = self._cursor = sqlite3.Connection.cursor(self._conn)
            except sqlite3.Error as exc:
                raise self._conn._translate(exc) from exc
        return cursor

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, sqlite3.Error):
            raise self._conn._translate(exc) from exc


class Connection(sqlite3.Connection):
    """An ``sqlite3.Connection`` whose errors are orbitstore's (see the module doc)."""

    #: What the messages call this database (a path, "a scratch store").
    label: str = "the SQLite store"
    _user: float | None = None  # the time budget of the user statement running now
    _guard: _Guard | None = None

    def guarded(self) -> _Guard:
        """A guard whose ``__enter__`` gives a plain cursor of this connection, shared
        by every guarded block: run statements whose results are read at once (a
        fetch after the block, or after another guarded statement, reads nothing)."""
        guard = self._guard
        if guard is None:
            guard = self._guard = _Guard(self)
        return guard

    def _translate(self, exc: sqlite3.Error) -> OrbitstoreError:
        budget = self._user
        if budget is not None:
            code = primary_code(exc)
            if code == sqlite3.SQLITE_INTERRUPT:
                return QueryLimitError(f"the query ran longer than its {budget:g} s budget")
            if code not in _SYSTEM and not _damaged(exc):
                return QueryError(f"the query cannot run: {exc}")
        return translate(exc, self.label)

    @contextmanager
    def user_statement(self, budget_s: float) -> Iterator[None]:
        """Statements run inside are the user's: their SQL errors become QueryError."""
        self._user = budget_s
        try:
            yield
        finally:
            self._user = None

    def cursor(self, factory: Any = None) -> Any:
        try:
            return super().cursor(factory or Cursor)
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc

    def execute(self, sql: str, parameters: Any = (), /) -> Any:
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> Any:
        return self.cursor().executemany(sql, parameters)

    def executescript(self, script: str, /) -> Any:
        return self.cursor().executescript(script)

    def commit(self) -> None:
        try:
            super().commit()
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc

    def rollback(self) -> None:
        try:
            super().rollback()
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc

    def close(self) -> None:
        try:
            super().close()
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc

    def serialize(self, *, name: str = "main") -> bytes:
        try:
            return super().serialize(name=name)
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc

    def deserialize(self, data: Any, /, *, name: str = "main") -> None:
        try:
            super().deserialize(data, name=name)
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc


class Cursor(sqlite3.Cursor):
    """A cursor of a :class:`Connection`: fetches and iteration are translated too."""

    def _translate(self, exc: sqlite3.Error) -> OrbitstoreError:
        conn = self.connection
        if isinstance(conn, Connection):
            return conn._translate(exc)
        return translate(exc, "the SQLite store")  # pragma: no cover - always ours

    def execute(self, sql: str, parameters: Any = (), /) -> Any:
        try:
            return super().execute(sql, parameters)
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> Any:
        try:
            return super().executemany(sql, seq_of_parameters)
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc

    def executescript(self, sql_script: str, /) -> Any:
        try:
            return super().executescript(sql_script)
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc

    def fetchone(self) -> Any:
        try:
            return super().fetchone()
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc

    def fetchmany(self, size: int | None = 1) -> list[Any]:
        try:
            return super().fetchmany(self.arraysize if size is None else size)
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc

    def fetchall(self) -> list[Any]:
        try:
            return super().fetchall()
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc

    def __next__(self) -> Any:
        try:
            return super().__next__()
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc


def connect(path: str | Path, *, label: str, uri: bool = False, **kwargs: Any) -> Connection:
    """Open a translated connection; a failure to open is a StorageError too."""
    try:
        conn = sqlite3.connect(str(path), uri=uri, factory=Connection, **kwargs)
    except sqlite3.Error as exc:
        raise translate(exc, f"cannot open {label}") from exc
    assert isinstance(conn, Connection)
    conn.label = label
    return conn
