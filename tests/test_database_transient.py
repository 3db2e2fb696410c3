"""Which database failures an ingest worker waits on (central.store.transient), told by exception type and
error code from the real servers: a locked SQLite file, a PostgreSQL backend terminated, a refused port,
a serialization failure, a deadlock. A refusal whose message happens to say "connection", "locked" or
"timeout" is not mistaken for one (the words were how it was told before). The whole restart of a server
under load is tests/test_central_fleet.py::test_a_postgresql_restart_under_load_loses_nothing."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from central.ingest import IngestWorker
from central.store import Changes, Committed, NewRejection, Transient, transient
from protocol import BrokerSettings
from tests.conftest import throwaway_postgres


def failure(engine: sa.Engine, *statements: str) -> sa.exc.DBAPIError:
    """What SQLAlchemy raises for `statements`, in one transaction on `engine` (the test fails if they succeed)."""
    with pytest.raises(sa.exc.DBAPIError) as raised, engine.begin() as conn:
        for sql in statements:
            conn.execute(sa.text(sql))
    return raised.value


# SQLite


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Iterator[tuple[Path, sa.Engine]]:
    path = tmp_path / "central.sqlite3"
    with sqlite3.connect(path) as setup:
        setup.execute("CREATE TABLE t (x INTEGER)")
        setup.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(10)])
    engine = sa.create_engine(f"sqlite:///{path}", connect_args={"timeout": 0})  # no busy wait: fail at once
    yield path, engine
    engine.dispose()


def test_a_sqlite_file_another_writer_holds_is_busy(sqlite_file: tuple[Path, sa.Engine]) -> None:
    path, engine = sqlite_file
    holder = sqlite3.connect(path)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        exc = failure(engine, "INSERT INTO t VALUES (99)")
    finally:
        holder.close()
    assert isinstance(exc.orig, sqlite3.OperationalError) and exc.orig.sqlite_errorcode == sqlite3.SQLITE_BUSY
    assert transient(exc) is Transient.BUSY


def test_a_sqlite_table_locked_by_a_statement_still_reading_is_busy(sqlite_file: tuple[Path, sa.Engine]) -> None:
    path, _ = sqlite_file
    conn = sqlite3.connect(path)
    try:
        reading = conn.execute("SELECT x FROM t")
        reading.fetchone()  # a read still open on the table
        with pytest.raises(sqlite3.OperationalError) as raised:
            conn.execute("DROP TABLE t")
        reading.close()
    finally:
        conn.close()
    assert raised.value.sqlite_errorcode == sqlite3.SQLITE_LOCKED
    assert transient(raised.value) is Transient.BUSY


def test_a_sqlite_refusal_that_mentions_a_connection_is_not_waited_for(sqlite_file: tuple[Path, sa.Engine]) -> None:
    _, engine = sqlite_file
    exc = failure(engine, "SELECT * FROM connection_log")  # "no such table: connection_log"
    assert isinstance(exc, sa.exc.OperationalError) and "connection" in str(exc.orig)
    assert transient(exc) is None


# PostgreSQL (the machine's server: a throwaway database each)


@pytest.fixture
def postgres() -> Iterator[sa.Engine]:
    with throwaway_postgres() as url:
        engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY, x INTEGER)"))
            conn.execute(sa.text("INSERT INTO t VALUES (1, 0), (2, 0)"))
        yield engine
        engine.dispose()


def test_a_terminated_postgresql_backend_is_unavailable(postgres: sa.Engine) -> None:
    with postgres.connect() as victim:
        pid = victim.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        with postgres.connect() as admin:
            admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(sa.exc.DBAPIError) as raised:
            victim.execute(sa.text("SELECT 1"))
    assert transient(raised.value) is Transient.UNAVAILABLE


def test_a_postgresql_port_nobody_listens_on_is_unavailable() -> None:
    from gateway.demo import free_port

    engine = sa.create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/postgres")
    try:
        with pytest.raises(sa.exc.OperationalError) as raised:
            engine.connect()
    finally:
        engine.dispose()
    assert getattr(raised.value.orig, "sqlstate", "?") is None  # libpq's own error: no server answered
    assert transient(raised.value) is Transient.UNAVAILABLE


def test_a_postgresql_serialization_failure_is_a_conflict_worth_retrying(postgres: sa.Engine) -> None:
    serializable = postgres.execution_options(isolation_level="SERIALIZABLE")
    with serializable.connect() as one, serializable.connect() as two:
        one.execute(sa.text("SELECT sum(x) FROM t"))
        two.execute(sa.text("SELECT sum(x) FROM t"))
        one.execute(sa.text("UPDATE t SET x = 1 WHERE id = 1"))
        two.execute(sa.text("UPDATE t SET x = 1 WHERE id = 2"))
        one.commit()
        with pytest.raises(sa.exc.DBAPIError) as raised:
            two.commit()
    assert getattr(raised.value.orig, "sqlstate", None) == "40001"
    assert transient(raised.value) is Transient.CONFLICT


def test_a_postgresql_deadlock_is_a_conflict_worth_retrying(postgres: sa.Engine) -> None:
    raised: list[BaseException] = []
    both_hold_one = threading.Barrier(2, timeout=10)

    def lock(first: int, second: int) -> None:
        try:
            with postgres.begin() as conn:
                conn.execute(sa.text("SET LOCAL deadlock_timeout = '100ms'"))
                conn.execute(sa.text("UPDATE t SET x = x + 1 WHERE id = :id"), {"id": first})
                both_hold_one.wait()
                conn.execute(sa.text("UPDATE t SET x = x + 1 WHERE id = :id"), {"id": second})
        except sa.exc.DBAPIError as exc:
            raised.append(exc)

    threads = [threading.Thread(target=lock, args=order) for order in ((1, 2), (2, 1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    (exc,) = raised  # the server broke the cycle by rolling one of them back
    assert getattr(getattr(exc, "orig", None), "sqlstate", None) == "40P01"
    assert transient(exc) is Transient.CONFLICT


@pytest.mark.parametrize("statements", [
    # An operational error whose message says "connection": an application's refusal, not a lost link.
    ["DO $$ BEGIN RAISE EXCEPTION 'connection to the lab system refused' USING ERRCODE = '55000'; END $$"],
    ["SET LOCAL statement_timeout = '10ms'", "SELECT pg_sleep(1)"],  # "... due to statement timeout"
    ["SELECT 1 / 0"],
    ["INSERT INTO t VALUES (1, 0)"],  # the key is there already
])
def test_a_postgresql_refusal_is_not_waited_for_whatever_its_words(postgres: sa.Engine, statements: list[str]) -> None:
    assert transient(failure(postgres, *statements)) is None


# The worker: what it waits on and what it refuses


class FailingFirst:
    """A database whose commit raises `error` the first `times` times, then stores nothing new."""

    def __init__(self, error: Callable[[], sa.exc.DBAPIError], times: int) -> None:
        self.error, self.left, self.calls = error, times, 0

    def commit(self, _changes: Changes) -> Committed:
        self.calls += 1
        if self.left > 0:
            self.left -= 1
            raise self.error()
        return Committed(0, 0, 0, 0)


NO_BROKER = BrokerSettings(port=1, insecure_dev=True)  # _commit never reaches the broker


def a_change() -> Changes:
    return Changes(rejections=[NewRejection("dho/v1/t1/gw-1/up/readings", "test", 1)])


async def test_the_worker_waits_out_a_serialization_failure_and_commits(
    postgres: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """Before, a serialization failure was taken for a refusal of the batch (its message has none of the
    words that meant "unavailable"): the batch was stored one message at a time, or refused."""
    serializable = postgres.execution_options(isolation_level="SERIALIZABLE")
    with serializable.connect() as one, serializable.connect() as two:
        one.execute(sa.text("SELECT sum(x) FROM t"))
        two.execute(sa.text("SELECT sum(x) FROM t"))
        one.execute(sa.text("UPDATE t SET x = 1 WHERE id = 1"))
        two.execute(sa.text("UPDATE t SET x = 1 WHERE id = 2"))
        one.commit()
        with pytest.raises(sa.exc.DBAPIError) as raised:
            two.commit()
    database = FailingFirst(lambda: raised.value, times=2)
    worker = IngestWorker(NO_BROKER, database, identifier="w-test")  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR):
        await asyncio.wait_for(worker._commit(a_change()), 10)
    assert database.calls == 3
    assert "database in conflict with another transaction" in caplog.text


async def test_the_worker_does_not_wait_for_ever_on_a_refusal_that_mentions_a_connection(tmp_path: Path) -> None:
    """Before, "no such table: connection_log" read as "database unavailable": the worker retried it for
    ever and acked nothing."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    refusal = failure(engine, "SELECT * FROM connection_log")
    engine.dispose()
    database = FailingFirst(lambda: refusal, times=1_000)
    worker = IngestWorker(NO_BROKER, database, identifier="w-test")  # type: ignore[arg-type]
    with pytest.raises(sa.exc.OperationalError):
        await asyncio.wait_for(worker._commit(a_change()), 5)
    assert database.calls == 1

