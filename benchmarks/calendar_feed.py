"""Benchmark: a user's personal calendar feed with 5,000 activities (issue 21 item 5; target p95 ≤ 300 ms).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_calendar_bench \\
        .venv/bin/python benchmarks/calendar_feed.py [--runs 40] [--warmup 3]   # BENCH_ACTIVITIES=5000

The database is migrated first (a fresh one is fine); the benchmark user and their activities are made
once (one in ten recurring weekly) and kept for the next run. The feed is requested through the real
URLconf with Django's test ``Client`` (no session: the secret URL is the credential), DEBUG off, and
parsed once with ``icalendar`` to check it holds every activity. Baselines, timed in the same rounds:

* SQL: the same rows and columns read with a bare cursor, the database's own share;
* the feed rebuilt on every request (the cache cleared first): the first request after a change;
* icalendar objects: the same calendar built with ``icalendar.Event``s and ``to_ical()`` from rows
  already read (what the feed would cost written with the library's objects: the reason it is not).

Not a test: numbers go to benchmarks/BENCHMARKS.md.
"""

import datetime
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import arguments, percentile, setup_django, time_interleaved

USERNAME = "bench-calendar"


def main() -> None:
    args = arguments(__doc__, runs=40, warmup=3)
    count = int(os.environ.get("BENCH_ACTIVITIES", "5000"))
    setup_django()
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.utils import timezone
    from icalendar import Calendar, Event

    from activities.models import Activity
    from activities.selectors import calendar_feed_activities
    from activities.services import calendar_feed_regenerate
    from crm.models import Account

    call_command("migrate", verbosity=0)
    user, _ = get_user_model().objects.get_or_create(username=USERNAME)
    have = Activity.objects.filter(owner=user).count()
    if have < count:
        account = Account.objects.create(name="Calendar benchmark account")
        start = timezone.now() - datetime.timedelta(days=365)
        Activity.objects.bulk_create(
            [
                Activity(
                    subject=f"Call #{index}, about the renewal; agenda",
                    activity_type="call" if index % 3 else "meeting",
                    description="Discuss pricing,\nnext steps" if index % 2 else "",
                    due_date=start + datetime.timedelta(hours=index * 3),
                    duration_minutes=30 + index % 4 * 15,
                    recurrence="FREQ=WEEKLY;COUNT=10" if index % 10 == 0 else "",
                    account=account,
                    owner=user,
                )
                for index in range(have, count)
            ],
            batch_size=1000,
        )
    token = calendar_feed_regenerate(user=user)
    url = f"/api/v1/crm/calendar/feed/{token}.ics"
    client = Client()

    def feed():
        response = client.get(url)
        assert response.status_code == 200, response.status_code
        return response.content

    def feed_cold():
        cache.clear()  # every request builds the feed: the first request after a change
        return feed()

    parsed = Calendar.from_ical(feed())
    events = parsed.walk("VEVENT")
    assert len(events) == count, (len(events), count)
    assert sum(1 for event in events if "RRULE" in event) == count // 10

    columns = "id, subject, activity_type, description, due_date, duration_minutes, recurrence, status"
    sql = (
        f"SELECT {columns}, completed_at, updated_at FROM activities_activity "
        "WHERE owner_id = %s AND due_date IS NOT NULL ORDER BY due_date, id"
    )

    def bare_sql():
        with connection.cursor() as cursor:
            cursor.execute(sql, [user.pk])
            return cursor.fetchall()

    rows = list(calendar_feed_activities(owner=user))  # FEED_COLUMNS

    def icalendar_objects():
        calendar = Calendar()
        calendar.add("prodid", "-//CRM//bench//EN")
        calendar.add("version", "2.0")
        for pk, subject, _type, description, due, minutes, recurrence, _status, updated_at in rows:
            event = Event()
            event.add("uid", f"activity-{pk}@crm")
            event.add("dtstamp", updated_at)
            event.add("dtstart", due)
            event.add("dtend", due + datetime.timedelta(minutes=minutes or 30))
            event.add("summary", subject)
            if description:
                event.add("description", description)
            if recurrence:
                event.add("rrule", dict(part.split("=", 1) for part in recurrence.split(";")))
            calendar.add_component(event)
        return calendar.to_ical()

    load_before = os.getloadavg()
    ours, cold, sql_times = time_interleaved([feed, feed_cold, bare_sql], args.runs, args.warmup)
    library = time_interleaved([icalendar_objects], max(5, args.runs // 8), 1)[0]
    load_after = os.getloadavg()
    size = len(feed())
    print(f"calendar feed of {count} activities ({count // 10} recurring), {size:,} bytes")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    print("| case | runs | p50 | p95 |")
    print("|---|---:|---:|---:|")
    for name, times in (
        ("GET the feed (ours), unchanged since the last request (cached)", ours),
        ("GET the feed (ours), rebuilt on every request (cache cleared)", cold),
        ("SQL baseline: the same rows", sql_times),
        ("icalendar objects baseline: build + to_ical, rows already read", library),
    ):
        print(
            f"| {name} | {len(times)} | {percentile(times, 0.5):.1f} ms | {percentile(times, 0.95):.1f} ms |"
        )
    for label, times in (("cached", ours), ("rebuilt", cold)):
        p95 = percentile(times, 0.95)
        print(f"target p95 <= 300 ms, {label}: {'met' if p95 <= 300 else 'NOT met'} ({p95:.1f} ms)")


if __name__ == "__main__":
    main()
