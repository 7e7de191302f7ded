"""Benchmark: email campaigns and segments at volume (issue 19).

    # 10,000 campaign emails sent by two Celery workers to an SMTP server on loopback (own database:
    # migrated first, its benchmark rows replaced)
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_marketing_bench CRM_BENCH_REDIS_DB=12 \\
        .venv/bin/python benchmarks/marketing.py send [--members 10000] [--workers 2]

    # live counts of segments over 1,000,000 leads (writes nothing: a seeded database may be read-only)
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_full \\
        .venv/bin/python benchmarks/marketing.py segments [--runs 20]

``send``: ``--members`` leads (written directly, not timed) are the members of a campaign with an email
template; an aiosmtpd server runs in this process on loopback; ``--workers`` worker processes (prefork,
concurrency 1 each) consume the Redis database ``CRM_BENCH_REDIS_DB`` (default 6, emptied). The clock
runs from ``campaign_send`` (what the admin action and the API call: members checked, queued, the
batch tasks queued after commit) until the SMTP server has received every message, then until every
member's line of the send log says ``sent``. Baseline in the same run: the same number of messages sent
by one process over one SMTP connection with Django's email backend (no database, no Celery).

``segments``: dynamic lead segments as a marketer defines them (status and source; created in the last
90 days; a tag; a score at least N; an email domain), built in memory (nothing is saved), counted by
``segment_count`` (what ``segments/{id}/preview/`` and the campaign's send preview count with) as a user
who sees every lead and as a sales rep (their own and their teams' leads), each timed in turns with the
hand-written SQL count of the same rows (see _harness.py). The counts must agree.
"""

import argparse
import datetime
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
REDIS_URL = f"redis://127.0.0.1:6379/{os.environ.get('CRM_BENCH_REDIS_DB', '6')}"
BENCH_DOMAIN = "bench-campaign.example"


# --- 10,000 campaign emails ------------------------------------------------------------------------


def send_setup(members: int):
    """A template, a campaign and ``members`` leads as its members (earlier benchmark rows replaced)."""
    from crm.actors import SYSTEM
    from crm.marketing.services import campaign_create
    from crm.messaging.services import email_template_create
    from crm.models import Campaign, CampaignMember, EmailTemplate, Lead, OutgoingEmail, Pipeline, Stage

    Campaign.objects.filter(name="Bench campaign").delete()
    OutgoingEmail.objects.filter(to__endswith=BENCH_DOMAIN).delete()
    Lead.objects.filter(email__endswith=BENCH_DOMAIN).delete()
    EmailTemplate.objects.filter(name="Bench campaign").delete()
    if not Pipeline.objects.filter(is_default=True).exists():
        pipeline = Pipeline.objects.create(name="Bench", is_default=True)
        Stage.objects.create(pipeline=pipeline, name="New", sequence=0)
    pipeline = Pipeline.objects.get(is_default=True)
    stage = pipeline.stages.order_by("sequence").first()
    template = email_template_create(
        user=SYSTEM,
        data={
            "name": "Bench campaign",
            "subject": "News for {{ recipient.first_name }}",
            "body_html": '<p>Hi {{ recipient.name }} of {{ lead.company_name }}</p><p><a href="https://'
            'example.com/offer">Our offer</a></p>',
        },
    )
    campaign = campaign_create(
        user=SYSTEM,
        data={
            "name": "Bench campaign",
            "email_template": template,
            "track_opens": True,
            "track_clicks": True,
        },
    )
    leads = Lead.objects.bulk_create(
        (
            Lead(
                name=f"Bench member {n}",
                contact_name=f"Person {n}",
                company_name=f"Company {n % 500}",
                email=f"person{n}@{BENCH_DOMAIN}",
                pipeline=pipeline,
                stage=stage,
                probability=stage.probability,
            )
            for n in range(members)
        ),
        batch_size=2000,
    )
    CampaignMember.objects.bulk_create(
        (CampaignMember(campaign=campaign, lead=lead) for lead in leads), batch_size=2000
    )
    return campaign


def smtp_baseline(count: int, smtp) -> float:
    from django.core.mail import EmailMultiAlternatives, get_connection

    connection = get_connection(
        "django.core.mail.backends.smtp.EmailBackend", host="127.0.0.1", port=smtp.port
    )
    started = time.monotonic()
    connection.open()
    for n in range(count):
        message = EmailMultiAlternatives("News", "Hi", to=[f"base{n}@bench.example"], connection=connection)
        message.attach_alternative("<p>Hi</p>", "text/html")
        message.send()
    connection.close()
    return time.monotonic() - started


def send_main(args) -> None:
    os.environ["CELERY_BROKER_URL"] = REDIS_URL
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm_project.settings")
    os.environ.setdefault("SECRET_KEY", "benchmark-only-secret-key")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    import redis
    from django.core.management import call_command
    from django.db.models import Count

    from crm.actors import SYSTEM
    from crm.marketing.sending import campaign_send
    from crm.models import CampaignMember, SendStatus
    from tests.backbone import smtp_start, worker_start

    call_command("migrate", verbosity=0)
    campaign = send_setup(args.members)
    smtp = smtp_start()
    print(f"load average at start: {os.getloadavg()}; {args.members:,} members, {args.workers} workers")
    base = smtp_baseline(args.members, smtp)
    print("| what | seconds | messages/s |\n|---|---:|---:|")
    print(
        f"| baseline: {args.members:,} messages, one process, one SMTP connection | {base:.1f} "
        f"| {args.members / base:.0f} |"
    )
    redis.Redis.from_url(REDIS_URL).flushdb()
    folder = Path(tempfile.mkdtemp(prefix="crm-campaign-bench-"))
    workers = [
        worker_start(
            folder,
            DATABASE_URL=os.environ["DATABASE_URL"],
            CELERY_BROKER_URL=REDIS_URL,
            EMAIL_URL=smtp.url,
            LOG_LEVEL="WARNING",
        )
        for _ in range(args.workers)
    ]
    received_before = len(smtp.received())
    try:
        started = time.monotonic()
        result = campaign_send(campaign=campaign, user=SYSTEM)
        queued_at = time.monotonic() - started
        while len(smtp.received()) - received_before < args.members:
            if time.monotonic() - started > args.timeout:
                break
            time.sleep(0.1)
        received_at = time.monotonic() - started
        members = CampaignMember.objects.filter(campaign=campaign)
        while members.filter(send_status__in=[SendStatus.PENDING, SendStatus.SENDING]).exists():
            if time.monotonic() - started > args.timeout:
                break
            time.sleep(0.1)
        logged_at = time.monotonic() - started
    finally:
        for worker in workers:
            worker.stop()
    received = len(smtp.received()) - received_before
    by_status = dict(members.order_by().values_list("send_status").annotate(n=Count("*")))
    print(
        f"| campaign_send (members checked and queued, tasks queued): {result['queued']:,} queued "
        f"| {queued_at:.1f} | |"
    )
    print(
        f"| **{received:,} messages received** from send, {args.workers} workers "
        f"| **{received_at:.1f}** | {received / received_at:.0f} |"
    )
    print(f"| every member's send log written ({by_status}) | {logged_at:.1f} | |")
    print(f"load average at end: {os.getloadavg()}")
    smtp.controller.stop()


# --- segment live counts over 1,000,000 leads -------------------------------------------------------


def segment_cases(args) -> list:
    import _harness as h
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from crm.marketing.selectors import segment_count, segment_preview
    from crm.models import Lead, Segment, Tag

    User = get_user_model()
    everyone = User.objects.filter(is_superuser=True, is_active=True).first() or User(
        username="bench-everyone", is_superuser=True, is_active=True
    )  # not saved: nothing is written
    rep = (
        User.objects.filter(is_superuser=False, is_active=True, owned_leads__isnull=False)
        .order_by("pk")
        .distinct()
        .first()
    )
    since = (timezone.now() - datetime.timedelta(days=90)).date()
    with connection.cursor() as cursor:
        cursor.execute("SELECT tag_id FROM crm_lead_tags GROUP BY tag_id ORDER BY count(*) DESC LIMIT 1")
        row = cursor.fetchone()
    tag = row[0] if row else Tag.objects.order_by("pk").values_list("pk", flat=True).first()
    sample = Lead.objects.exclude(email="").order_by("pk").values_list("email", flat=True)[500]
    domain = sample.split("@", 1)[1]
    definitions = [
        (
            "status open, source website",
            {"status": "open", "source": "website"},
            "SELECT count(*) FROM crm_lead WHERE status = 'open' AND source = 'website'",
            [],
        ),
        (
            "created in the last 90 days",
            {"created_after": since.isoformat()},
            "SELECT count(*) FROM crm_lead WHERE created_at >= %s",
            [datetime.datetime.combine(since, datetime.time.min, tzinfo=datetime.UTC)],
        ),
        (
            f"tag {tag}",
            {"tag": str(tag)},
            "SELECT count(*) FROM crm_lead l JOIN crm_lead_tags t ON t.lead_id = l.id WHERE t.tag_id = %s",
            [tag],
        ),
        ("score at least 60", {"score_min": "60"}, "SELECT count(*) FROM crm_lead WHERE score >= 60", []),
        (
            f"email domain “@{domain}” (search)",
            {"search": f"@{domain}"},
            "SELECT count(*) FROM crm_lead WHERE upper(email::text) LIKE upper(%s) OR upper(name::text) LIKE "
            "upper(%s) OR upper(contact_name::text) LIKE upper(%s) OR upper(company_name::text) LIKE "
            "upper(%s) OR upper(phone::text) LIKE upper(%s)",
            [f"%@{domain}%"] * 5,
        ),
        (
            "open, hot, created in the last 90 days, score at least 40",
            {"status": "open", "rating": "hot", "created_after": since.isoformat(), "score_min": "40"},
            "SELECT count(*) FROM crm_lead WHERE status = 'open' AND rating = 'hot' AND created_at >= %s "
            "AND score >= 40",
            [datetime.datetime.combine(since, datetime.time.min, tzinfo=datetime.UTC)],
        ),
    ]
    cases = []
    for label, definition, sql, params in definitions:
        segment = Segment(name=label, entity="lead", kind="dynamic", definition=definition)
        expected = h.sql_call(lambda sql=sql, params=params: [(sql, params)])

        def check(segment=segment, expected=expected):
            ours, theirs = segment_count(segment=segment, user=everyone), expected()[0][0][0]
            if ours != theirs:
                raise SystemExit(f"{segment.name}: segment_count {ours:,}, the SQL count {theirs:,}")
            return f"{ours:,} leads, as the SQL count", None

        cases.append(
            h.Case(
                name=f"segment live count: {label}",
                call=lambda segment=segment: segment_count(segment=segment, user=everyone),
                sql=expected,
                target="p95 ≤ 200 ms",
                target_p95_ms=200,
                check=check,
            )
        )
    first = Segment(name="preview", entity="lead", kind="dynamic", definition=definitions[0][1])
    cases.append(
        h.Case(
            name="segment preview (count and first 10): status open, source website",
            call=lambda: segment_preview(segment=first, user=everyone),
            sql=h.sql_call(lambda: [(definitions[0][2], [])]),
            target="p95 ≤ 200 ms",
            target_p95_ms=200,
        )
    )
    if rep is not None:
        cases.append(
            h.Case(
                name=f"segment live count as a sales rep ({rep.username}): status open, source website",
                call=lambda: segment_count(segment=first, user=rep),
                target="p95 ≤ 200 ms",
                target_p95_ms=200,
            )
        )
    return cases


def segments_main(args) -> None:
    import _harness as h

    h.setup_django()
    from django.db import connection

    with connection.cursor() as cursor:  # this benchmark reads only: make sure of it
        cursor.execute("SET default_transaction_read_only = on")
    h.run("Segment live counts", segment_cases(args), args)


def main() -> None:
    parser = argparse.ArgumentParser(description="Email campaign and segment benchmark")
    sub = parser.add_subparsers(dest="what", required=True)
    send = sub.add_parser("send")
    send.add_argument("--members", type=int, default=10000)
    send.add_argument("--workers", type=int, default=2)
    send.add_argument("--timeout", type=float, default=600)
    segments = sub.add_parser("segments")
    segments.add_argument("--runs", type=int, default=20)
    segments.add_argument("--warmup", type=int, default=2)
    segments.add_argument("--only", default="")
    segments.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.what == "send":
        send_main(args)
    else:
        segments_main(args)


if __name__ == "__main__":
    main()
