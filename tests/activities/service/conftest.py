"""Tickets for the customer-service tests, made through the services."""

import pytest

from activities.service.services import ticket_create
from crm.actors import SYSTEM


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


@pytest.fixture
def make_ticket(db):
    def make(**data):
        data.setdefault("subject", "The printer is on fire")
        return ticket_create(user=SYSTEM, data=data)

    return make
