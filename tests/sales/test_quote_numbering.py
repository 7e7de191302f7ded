"""Quote numbers: Q-<year>-<nnnn>, gap-free per year, never given twice under concurrent creation."""

import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from crm.actors import SYSTEM
from sales.models import Quote, QuoteCounter
from sales.services_quotes import quote_create
from tests.factories import OpportunityFactory


@pytest.mark.django_db
def test_numbers_follow_each_other_within_a_year(stages):
    deal = OpportunityFactory(stage=stages["New"])
    year = timezone.localdate().year

    numbers = [quote_create(opportunity=deal, user=SYSTEM).number for _ in range(3)]

    assert numbers == [f"Q-{year}-0001", f"Q-{year}-0002", f"Q-{year}-0003"]
    assert QuoteCounter.objects.get(year=year).last_number == 3


@pytest.mark.django_db
def test_a_failed_creation_gives_its_number_back(stages):
    deal = OpportunityFactory(stage=stages["New"])
    year = timezone.localdate().year

    with pytest.raises(ValidationError):
        quote_create(opportunity=deal, user=SYSTEM, data={"currency": "not a code"})
    quote = quote_create(opportunity=deal, user=SYSTEM)

    assert quote.number == f"Q-{year}-0001"


@pytest.mark.postgres_only
@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite runs one writer at a time anyway")
@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_creations_get_twenty_consecutive_numbers(stages):
    deal = OpportunityFactory(stage=stages["New"])
    barrier = threading.Barrier(20)
    errors: list[BaseException] = []

    def create():
        try:
            barrier.wait()
            quote_create(opportunity=deal, user=SYSTEM)  # its own thread: its own connection, transaction
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=create) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not errors
    year = timezone.localdate().year
    numbers = sorted(Quote.objects.values_list("number", flat=True))
    assert numbers == [f"Q-{year}-{n:04d}" for n in range(1, 21)]
    assert QuoteCounter.objects.get(year=year).last_number == 20
