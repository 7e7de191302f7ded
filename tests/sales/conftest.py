"""Fixtures of the sales tests."""

import pytest


@pytest.fixture
def media(settings, tmp_path):
    """Files the tests store (quote PDFs) go to a folder of the test's own."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return settings.MEDIA_ROOT
