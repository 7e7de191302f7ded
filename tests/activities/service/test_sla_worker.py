"""Issue 20 item 2 through the real worker: beat's SLA scan, run by a Celery worker on Redis at moments
the test chooses (the task takes the instant; the tickets were created under time-machine), warns the
assignee and then tells the queue's manager, by email through an SMTP server on loopback."""

import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine

from activities.service import services
from activities.tasks import ticket_sla_scan
from crm.actors import SYSTEM
from crm.models import Notification, NotificationKind
from tests.backbone import wait_until
from tests.factories import SalesTeam, UserFactory

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]
PARIS = ZoneInfo("Europe/Paris")


def test_the_worker_warns_before_the_breach_and_tells_the_manager_at_it(smtp_server, start_worker):
    agent, boss = UserFactory(username="agent"), UserFactory(username="boss_of_support")
    team = SalesTeam.objects.create(name="Support", manager=boss)
    team.members.add(agent)
    calendar = services.working_calendar_create(
        user=SYSTEM,
        data={
            "name": "Paris",
            "time_zone": "Europe/Paris",
            "hours": [{"weekday": d, "start": datetime.time(9), "end": datetime.time(17)} for d in range(5)],
        },
    )
    services.sla_policy_create(
        user=SYSTEM,
        data={"name": "Std", "calendar": calendar, "first_response_minutes": 120, "warn_before_minutes": 30},
    )
    # Friday 4 Dec 2026 16:00 Paris: 1 h on Friday, 1 h on Monday → due Monday 7 Dec 10:00 Paris,
    # warned from 09:30.
    with time_machine.travel(datetime.datetime(2026, 12, 4, 16, 0, tzinfo=PARIS), tick=False):
        ticket = services.ticket_create(
            user=SYSTEM, data={"subject": "VPN down", "assignee": agent, "team": team}
        )
    start_worker()

    ticket_sla_scan.apply_async(kwargs={"now": "2026-12-05T12:00:00+01:00"}, retry=False)  # Saturday
    ticket_sla_scan.apply_async(kwargs={"now": "2026-12-07T09:35:00+01:00"}, retry=False)
    # The assignment's email, then the warning's.
    assigned, warning = smtp_server.wait_for(2, timeout=40)
    assert assigned["Subject"].startswith("Ticket assigned to you")
    assert warning["To"] == agent.email and warning["Subject"] == f"SLA at risk: {ticket.number} VPN down"

    ticket_sla_scan.apply_async(kwargs={"now": "2026-12-07T10:01:00+01:00"}, retry=False)
    ticket_sla_scan.apply_async(kwargs={"now": "2026-12-07T10:02:00+01:00"}, retry=False)
    breach = smtp_server.wait_for(3, timeout=40)[2]
    assert breach["To"] == boss.email and breach["Subject"] == f"SLA breached: {ticket.number} VPN down"
    wait_until(
        lambda: Notification.objects.filter(
            kind=NotificationKind.SLA_BREACHED, emailed_at__isnull=False
        ).exists()
    )
    assert Notification.objects.filter(kind=NotificationKind.SLA_WARNING).count() == 1
    assert Notification.objects.filter(kind=NotificationKind.SLA_BREACHED).count() == 1
    assert len(smtp_server.received()) == 3
