"""Fixtures of the activities tests: a real IMAP server (dovecot) on loopback."""

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.activities.imap_server import dovecot_start


@pytest.fixture
def dovecot():
    """A dovecot with two users, sales@example.com (a shared mailbox) and bob, stopped after the test.
    Its folder is a fresh one under the system's temporary folder (not pytest's, which is private to
    this user: dovecot's own processes must reach it)."""
    folder = Path(tempfile.mkdtemp(prefix="crm-dovecot-"))
    try:
        server = dovecot_start(folder, {"sales@example.com": "s3cret-sales", "bob": "bob-pass"})
        yield server
        server.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
