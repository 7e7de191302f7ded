"""What the migration round-trip tests share: when they run."""

import os

import pytest
from django.db import connection

# Going back to a migration unapplies every later one, and forward again: on SQLite each schema step
# rebuilds its table, which took 3 to 5 minutes of a CI run for these tests alone. A migration's data step
# is the ORM's and the same on both databases, so it is proven on PostgreSQL.
# Every migration added since makes the round trip longer (over three minutes of a PostgreSQL CI run for
# the two), and these migrations have run on every database long ago: CRM_MIGRATION_ROUNDTRIPS=1 runs them.
ROUNDTRIP_MARKS = [
    pytest.mark.skipif(
        connection.vendor == "sqlite", reason="a round trip over later migrations rebuilds tables on SQLite"
    ),
    pytest.mark.skipif(
        os.environ.get("CRM_MIGRATION_ROUNDTRIPS") != "1",
        reason="a round trip over every later migration; CRM_MIGRATION_ROUNDTRIPS=1 runs it",
    ),
]
