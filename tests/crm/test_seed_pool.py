"""``crm_seed --jobs``'s statement pool (``crm.seeding.parallel``): a chain of statements runs in order on
one connection, and what waits for it runs only once it has (PostgreSQL)."""

import pytest
from django.db import DatabaseError, connection

from crm.seeding.parallel import StatementPool
from crm.seeding.share import copy_line

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the pool runs PostgreSQL connections"),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def log():
    """A table the pool's statements write to, committed so that its connections see it."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE test_pool_log (n serial PRIMARY KEY, what text, "
            "at timestamptz NOT NULL DEFAULT clock_timestamp())"
        )
    yield
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE test_pool_log")


def written() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT what FROM test_pool_log ORDER BY at, n")
        return [what for (what,) in cursor.fetchall()]


def insert(what: str) -> str:
    return f"INSERT INTO test_pool_log (what) VALUES ('{what}')"


def test_a_chain_queued_first_runs_ahead_of_what_was_queued_before_and_then_lets_its_followers_run(log):
    pool = StatementPool(1)
    sizes = {"big": 1e9, "small": 1.0}
    assert pool.add([(insert("big index"), "big")], sizes) == 1
    chain = [insert("feed 1"), "SELECT pg_sleep(0.1)", insert("feed 2")]
    then = [(insert("its index"), "small")]
    assert pool.add_chain(chain, "small", sizes, then=then, first=True) == 4
    ticks = []
    with pool:
        pool.wait(ticks.append)

    # One connection: the chain first, then by size (the big table's before the chain's follower).
    assert written() == ["feed 1", "feed 2", "big index", "its index"]
    assert sum(ticks) == 5
    assert pool.pending() == []


def test_what_waits_for_a_chain_starts_after_its_last_statement_on_any_connection(log):
    pool = StatementPool(2)
    sizes = {"t": 1.0}
    # Long enough for the other connection to be up and take "other" even on a busy machine.
    chain = [insert("feed"), "SELECT pg_sleep(1)", insert("compacted")]
    pool.add_chain(chain, "t", sizes, then=[(insert(f"index {k}"), "t") for k in range(3)], first=True)
    # The other connection is free all along: only the chain holds the followers back.
    pool.add([(insert("other"), "t")], sizes)
    with pool:
        pool.wait(lambda n: None)

    order = written()
    assert order.index("compacted") < min(order.index(f"index {k}") for k in range(3))
    assert order.index("other") < order.index("compacted")


def test_a_chain_that_fails_leaves_its_rest_and_its_followers_pending_and_unrun(log):
    pool = StatementPool(2)
    sizes = {"t": 1.0}
    failing = "SELECT 1 / 0"
    pool.add_chain(
        [insert("feed"), failing, insert("compacted")], "t", sizes, then=[(insert("index"), "t")], first=True
    )
    with pytest.raises(DatabaseError, match="division by zero"), pool:
        pool.wait(lambda n: None)

    assert written() == ["feed"]
    # What the seed's undo makes again, the index among it.
    assert pool.pending() == [failing, insert("compacted"), insert("index")]


@pytest.mark.parametrize(
    "row",
    [
        (1, "plain", None, "", True, "x"),
        (2, "plain", "", None, False, "y"),
        (3, "a\ttab", "back\\slash", "new\nline", None, "carriage\rreturn"),
        (4, "\\N", "N", "\\", False, "\t"),
        (5, "\\N", "back\\slash", "", None, "no tab"),
    ],
    ids=["plain", "false", "escaped", "null-like", "backslash-only"],
)
def test_a_shared_row_reads_back_as_written(row):
    """What the seed's second process writes (crm.seeding.share.copy_line), read by PostgreSQL's COPY."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE test_copy_line (n int, a text, b text, c text, flag boolean, d text)"
        )
        with cursor.cursor.copy("COPY test_copy_line FROM STDIN") as copy:
            copy.write(copy_line(row) + "\n")
        cursor.execute("SELECT * FROM test_copy_line")
        read = cursor.fetchone()
        cursor.execute("DROP TABLE test_copy_line")
    assert read == row
