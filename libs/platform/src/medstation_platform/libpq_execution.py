"""Prepared statements run on an autocommit psycopg connection's libpq handle directly.

psycopg's async cursor costs about 50-75 µs of CPU per execution above libpq's own
work on this machine's class of hardware: a cursor and a transformer per execution, a query
conversion, its prepare manager, and a generator driven by a waiting loop that arms a
timer for every wait. The hot statements of a group commit run hundreds of times a
second, each for several requests, so this module keeps only what such a statement
needs: it is prepared once per connection under a name of ours, then sent as
Bind/Execute with psycopg's own dumpers, awaited on the socket, and its rows made by
psycopg's own loaders. A statement recording and returning three reads costs its
client 142 → 93 µs of CPU (`libs/platform/benchmarks/statement_execution.py`); GetMe,
one point read per call, went from 970 to 1 087 req/s through the gateway.

Only for connections in autocommit (the statement pool's, and a unit of work's in
autocommit), outside pipeline mode: psycopg would begin a transaction before a
statement on any other connection, and that stays its job. Errors are psycopg's own
(`psycopg.errors.UniqueViolation`, its `diag` naming the constraint), so callers
cannot tell the two paths apart.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal
from weakref import WeakKeyDictionary

import psycopg
from psycopg import errors, pq
from psycopg.adapt import PyFormat, Transformer

logger = logging.getLogger(__name__)

RowMaker = Callable[[Sequence[Any]], Any]

# How long a cancelled statement may take to stop before its connection is closed; the
# value psycopg itself uses.
_CANCEL_TIMEOUT_SECONDS = 5.0
# SQLSTATE invalid_sql_statement_name: executing a prepared statement that is not there.
_UNDEFINED_PREPARED_STATEMENT = b"26000"
_DUPLICATE_PREPARED_STATEMENT = b"42P05"


class NumberedStatement:
    """A statement with `$n` placeholders and the parameter names in `$n` order."""

    __slots__ = ("_key", "_make_row", "_names_by_types", "names", "sql")

    def __init__(self, sql: str, names: Sequence[str]) -> None:
        self.sql: bytes = sql.encode()
        self.names: tuple[str, ...] = tuple(names)
        self._key = hashlib.blake2b(self.sql, digest_size=10).hexdigest()
        # Both made once, not per execution: a statement meets few sets of parameter
        # types, and its SQL names the columns of its result.
        self._names_by_types: dict[tuple[int, ...], bytes] = {}
        self._make_row: RowMaker | None = None

    def prepared_name(self, types: Sequence[int]) -> bytes:
        """A name per statement and parameter types, as psycopg's prepare manager keys
        its own; the prefix keeps it apart from psycopg's `_pg3_` names."""
        key = tuple(types)
        name = self._names_by_types.get(key)
        if name is None:
            name = f"medstation_{self._key}_{'_'.join(map(str, key))}".encode()
            self._names_by_types[key] = name
        return name

    def row_maker(self, result: pq.abc.PGresult, encoding: str) -> RowMaker:
        """Named tuples of `result`'s columns (as psycopg's `namedtuple_row` makes)."""
        if self._make_row is None:
            self._make_row = _row_maker(_column_names(result, encoding))
        return self._make_row


class _ConnectionState:
    """What a connection keeps between statements: the prepared names it holds, and a
    transformer (its dumpers and loaders looked up once, not per execution)."""

    __slots__ = ("prepared", "transformer")

    def __init__(self, driver: psycopg.AsyncConnection[Any]) -> None:
        self.transformer = Transformer(driver)
        self.prepared: set[bytes] = set()


_states: WeakKeyDictionary[psycopg.AsyncConnection[Any], _ConnectionState] = WeakKeyDictionary()


def usable(driver: psycopg.AsyncConnection[Any]) -> bool:
    """Whether `run` may run statements on `driver`: autocommit, no pipeline."""
    return driver.autocommit and driver.pgconn.pipeline_status == pq.PipelineStatus.OFF


async def run(
    driver: psycopg.AsyncConnection[Any],
    statement: NumberedStatement,
    values: Mapping[str, object],
    fetch: bool | Literal["all"],
) -> Any:
    """Runs `statement` with `values`: the first row (a named tuple, or None) when
    `fetch` is True, every row when it is "all", nothing otherwise.

    Raises psycopg's errors, as its cursor would: OperationalError when the connection
    fails, the server's error (IntegrityError…) when the statement does.
    """
    async with driver.lock:
        if driver.closed:
            raise psycopg.OperationalError("the connection is closed")
        state = _states.get(driver)
        if state is None:
            state = _states[driver] = _ConnectionState(driver)
        tx = state.transformer
        parameters = tx.dump_sequence(
            [values[name] for name in statement.names], [PyFormat.AUTO] * len(statement.names)
        )
        types = tx.types
        name = statement.prepared_name(types or ())
        if name not in state.prepared:
            await _prepare(driver, state, name, statement.sql, types)
        driver.pgconn.send_query_prepared(name, parameters, tx.formats)
        results = await _results(driver)
        if _failed_with(results, _UNDEFINED_PREPARED_STATEMENT):
            # Dropped behind our back: psycopg sends DEALLOCATE ALL after a ROLLBACK on
            # a connection it has prepared statements on (a unit of work's, say), and
            # DISCARD ALL drops them too. Nothing ran, so preparing again is safe.
            state.prepared.clear()
            await _prepare(driver, state, name, statement.sql, types)
            driver.pgconn.send_query_prepared(name, parameters, tx.formats)
            results = await _results(driver)
        result = _check(results, driver)
        if not fetch or result.status != pq.ExecStatus.TUPLES_OK:
            return None
        tx.set_pgresult(result)
        make_row = statement.row_maker(result, driver.info.encoding)
        if fetch == "all":
            return tx.load_rows(0, result.ntuples, make_row)
        return tx.load_row(0, make_row) if result.ntuples else None


async def _prepare(
    driver: psycopg.AsyncConnection[Any],
    state: _ConnectionState,
    name: bytes,
    sql: bytes,
    types: Sequence[int] | None,
) -> None:
    driver.pgconn.send_prepare(name, sql, types)
    results = await _results(driver)
    # Already there when a caller gave up after the server prepared it but before the
    # reply was read: the name stands for this statement and these types, so it is ours.
    if not _failed_with(results, _DUPLICATE_PREPARED_STATEMENT):
        _check(results, driver)
    state.prepared.add(name)


def _failed_with(results: list[pq.abc.PGresult], sqlstate: bytes) -> bool:
    return any(
        result.status == pq.ExecStatus.FATAL_ERROR
        and result.error_field(pq.DiagnosticField.SQLSTATE) == sqlstate
        for result in results
    )


def _check(results: list[pq.abc.PGresult], driver: psycopg.AsyncConnection[Any]) -> Any:
    """The statement's result; its error as psycopg's exception."""
    for result in results:
        if result.status == pq.ExecStatus.FATAL_ERROR:
            raise errors.error_from_result(result, encoding=driver.info.encoding)
    if len(results) != 1:
        raise psycopg.InternalError(f"expected one result, got {len(results)}")
    return results[0]


async def _results(driver: psycopg.AsyncConnection[Any]) -> list[pq.abc.PGresult]:
    """Flushes what was sent and reads every result of it, waiting on the socket."""
    pgconn = driver.pgconn
    try:
        return await _exchange(pgconn)
    except asyncio.CancelledError:
        if pgconn.transaction_status == pq.TransactionStatus.ACTIVE:
            await _stop(driver)
        raise
    except OSError as error:
        raise psycopg.OperationalError("connection socket closed") from error


async def _exchange(pgconn: pq.abc.PGconn) -> list[pq.abc.PGresult]:
    loop = asyncio.get_running_loop()
    fd = pgconn.socket
    while pgconn.flush():
        # Only a large statement fills the socket's buffer: wait for room, reading what
        # the server sends meanwhile, as libpq asks.
        await _ready(loop, fd, writable=True)
        pgconn.consume_input()
    results: list[pq.abc.PGresult] = []
    while True:
        while pgconn.is_busy():
            await _ready(loop, fd, writable=False)
            pgconn.consume_input()
        result = pgconn.get_result()
        if result is None:
            return results
        results.append(result)


async def _ready(loop: asyncio.AbstractEventLoop, fd: int, *, writable: bool) -> None:
    ready = loop.create_future()
    loop.add_reader(fd, _wake, ready)
    if writable:
        loop.add_writer(fd, _wake, ready)
    try:
        await ready
    finally:
        loop.remove_reader(fd)
        if writable:
            loop.remove_writer(fd)


def _wake(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)


async def _stop(driver: psycopg.AsyncConnection[Any]) -> None:
    """A statement abandoned while the server runs it: cancel it and drain its results,
    as psycopg does, so the connection goes back to its pool usable; close it if that
    fails, so the pool replaces it rather than hand out a connection mid-statement."""
    pgconn = driver.pgconn
    try:
        await driver.cancel_safe(timeout=_CANCEL_TIMEOUT_SECONDS)
        async with asyncio.timeout(_CANCEL_TIMEOUT_SECONDS):
            await _exchange(pgconn)
    except BaseException as error:
        logger.warning("cancelled statement not stopped (%s): closing its connection", error)
        pgconn.finish()
        if not isinstance(error, Exception):
            raise


def _column_names(result: pq.abc.PGresult, encoding: str) -> tuple[str, ...]:
    return tuple((result.fname(index) or b"").decode(encoding) for index in range(result.nfields))


def _row_maker(names: tuple[str, ...]) -> RowMaker:
    row_type: Any = namedtuple("Row", names, rename=True)  # type: ignore[misc]
    make: RowMaker = row_type._make
    return make
