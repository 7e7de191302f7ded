"""Aggregates written the way the database computes them fastest."""

from django.db.models import Count, Q, Value


def count_rows(filter: Q | None = None) -> Count:
    """The rows of a group (those matching ``filter``): ``COUNT(*)``, or ``COUNT(1) FILTER (WHERE …)``.

    Not ``COUNT(id)``: counting a column makes PostgreSQL read it out of every row and test it for NULL.
    Over the 82,000 won deals of a 1M-lead database, a revenue report by month took 70 ms with
    ``COUNT(id)`` and 37 ms with ``COUNT(*)``, the same plan otherwise. (Django refuses ``Count("*")``
    with a filter, hence the constant.)
    """
    return Count("*") if filter is None else Count(Value(1), filter=filter)
