"""The scale benchmarks in benchmarks/ run end to end on a small seeded database (one timed request a
case). They check nothing about speed: they prove the scripts still match the code they measure, and
each script itself stops when a SQL baseline returns other rows than the page or endpoint it stands for."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ["api_lists.py", "boards_reports.py", "admin_pages.py", "sales_operations.py"]
SIZES = {"leads": 1000, "opportunities": 200, "accounts": 50, "contacts": 150, "activities": 500, "users": 5}

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the benchmarks' SQL baselines are PostgreSQL's"
)


@pytest.fixture
def seeded_database_url(transactional_db) -> str:
    """The test database, seeded and committed so that a child process sees it, as a DATABASE_URL."""
    call_command(
        "crm_seed", *[f"--{name}={count}" for name, count in SIZES.items()], "--no-progress", verbosity=0
    )
    settings = connection.settings_dict
    password = f":{settings['PASSWORD']}" if settings.get("PASSWORD") else ""
    host = settings.get("HOST") or "127.0.0.1"
    port = settings.get("PORT") or 5432
    return f"postgres://{settings['USER']}{password}@{host}:{port}/{settings['NAME']}"


def test_benchmark_scripts_run(seeded_database_url):
    # One test for the three scripts: the seeding is the slow part, done once.
    env = {**os.environ, "DATABASE_URL": seeded_database_url}
    for script in SCRIPTS:
        result = subprocess.run(
            [sys.executable, str(ROOT / "benchmarks" / script), "--runs=1", "--warmup=0"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, f"{script}:\n{result.stdout}{result.stderr}"
        # The seed leaves every page of the records' tables all-visible, and the header says so.
        assert "; 100% of their pages all-visible\n" in result.stdout, script
        table = [line for line in result.stdout.splitlines() if line.startswith("| ")]
        assert table[0].startswith("| what | p50 ms | p95 ms | queries/request"), script
        assert len(table) > 2, script  # the header, its rule, then a row per case
