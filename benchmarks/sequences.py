"""Benchmark: sequence enrollments advanced one step by two real Celery workers (issue 17).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_sequences_bench \\
        .venv/bin/python benchmarks/sequences.py [--enrollments 10000] [--workers 2] \\
        [--kinds wait,task,email] [--one-by-one 2000]

The database is migrated first (a fresh one is fine), then emptied of leads, sequences and their
rows. For each kind of step — a wait, a task (an activity written through the activity services),
an email (rendered, queued, sent to an aiosmtpd server on loopback on one connection per batch, and
logged as an email activity on the lead) — ``--enrollments`` leads are enrolled (not timed: rows
written directly) due now; then ``--workers`` worker processes (prefork, concurrency 1 each) start,
the advance task is queued once per worker and again whenever one ends while enrollments are still
due (what beat does every minute), and the clock runs from the first task queued until every
enrollment has moved on (and, for email, every message has reached the SMTP server).

Baselines in the same run: the same number of messages sent by one process over one SMTP connection
with Django's email backend (no database, no Celery): what loopback SMTP allows; and, with
``--one-by-one N``, the task and email steps of N enrollments with the batch's emails and activities
written one by one (each activity through ``activity_create``, as before the bulk writer), the task
queued with ``bulk=False``.

Redis database ``CRM_BENCH_REDIS_DB`` (default 6) is used and emptied. Not a test: numbers go to
benchmarks/BENCHMARKS.md.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
REDIS_URL = f"redis://127.0.0.1:6379/{os.environ.get('CRM_BENCH_REDIS_DB', '6')}"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm_project.settings")
os.environ.setdefault("SECRET_KEY", "benchmark-only-secret-key")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ["CELERY_BROKER_URL"] = REDIS_URL


def setup(count: int, kind: str, template, name: str = ""):
    from django.utils import timezone

    from crm.actors import SYSTEM
    from crm.models import Lead, Pipeline, SequenceEnrollment
    from crm.sequences import services

    steps = {
        "wait": [{"position": 1, "kind": "wait", "wait_days": 1}],
        "task": [
            {"position": 1, "kind": "task", "task_subject": "Follow up"},
            {"position": 2, "kind": "wait", "wait_days": 1},
        ],
        "email": [
            {"position": 1, "kind": "email", "email_template": template},
            {"position": 2, "kind": "wait", "wait_days": 1},
        ],
    }[kind]
    sequence = services.sequence_create(user=SYSTEM, data={"name": name or f"Bench {kind}"}, steps=steps)
    pipeline = Pipeline.objects.get(is_default=True)
    stage = pipeline.stages.order_by("sequence").first()
    first = Lead.objects.count()
    leads = Lead.objects.bulk_create(
        Lead(
            name=f"Bench lead {first + n}",
            contact_name=f"Person {n}",
            email=f"person{first + n}@bench.example",
            pipeline=pipeline,
            stage=stage,
            probability=stage.probability,
        )
        for n in range(count)
    )
    now = timezone.now()
    SequenceEnrollment.objects.bulk_create(
        SequenceEnrollment(sequence=sequence, lead=lead, next_run_at=now) for lead in leads
    )
    return sequence


def moved_on(sequence) -> int:
    from crm.models import SequenceEnrollment

    return SequenceEnrollment.objects.filter(sequence=sequence).exclude(position=0).count()


def run_scenario(kind, args, smtp, template, *, count=None, bulk=True) -> dict:
    import redis

    from crm.models import SequenceEnrollment
    from crm.sequences.tasks import sequence_enrollments_advance
    from tests.backbone import redis_flush, worker_start

    count = count or args.enrollments
    redis_flush()
    sequence = setup(count, kind, template, name=f"Bench {kind}{'' if bulk else ' one by one'}")
    received_before = len(smtp.received())
    folder = Path(tempfile.mkdtemp(prefix="crm-seq-bench-"))
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
    try:
        started = time.monotonic()
        for _ in range(args.workers):
            sequence_enrollments_advance.apply_async(kwargs={"bulk": bulk}, retry=False)
        queue = redis.Redis.from_url(REDIS_URL)
        while True:
            done = moved_on(sequence)
            sent = len(smtp.received()) - received_before
            if done >= count and (kind != "email" or sent >= count):
                break
            if done < count and queue.llen("celery") == 0:
                # A task ended (its time budget, or it found the rest claimed): what beat does
                # every minute, sooner. An extra task finds nothing due and ends at once.
                sequence_enrollments_advance.apply_async(kwargs={"bulk": bulk}, retry=False)
            if time.monotonic() - started > 600:
                raise SystemExit(f"{kind}: only {done} moved on, {sent} emails after 600 s")
            time.sleep(0.2)
        elapsed = time.monotonic() - started
    finally:
        for worker in workers:
            worker.stop()
    failed = SequenceEnrollment.objects.filter(sequence=sequence).exclude(last_error="").count()
    return {"kind": kind, "seconds": elapsed, "per_second": count / elapsed, "failed": failed}


def baseline_smtp(count: int, smtp) -> float:
    from django.core.mail import EmailMultiAlternatives, get_connection

    connection = get_connection(
        "django.core.mail.backends.smtp.EmailBackend", host="127.0.0.1", port=smtp.port
    )
    started = time.monotonic()
    connection.open()
    for n in range(count):
        message = EmailMultiAlternatives(
            "Welcome", "Hi", to=[f"base{n}@bench.example"], connection=connection
        )
        message.attach_alternative("<p>Hi</p>", "text/html")
        message.send()
    connection.close()
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--enrollments", type=int, default=10000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kinds", default="wait,task,email")
    parser.add_argument("--one-by-one", type=int, default=0, help="baseline: N enrollments, bulk off")
    args = parser.parse_args()

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from crm.actors import SYSTEM
    from crm.messaging.services import email_template_create
    from crm.models import EmailTemplate, Lead, OutgoingEmail, Pipeline, Sequence, Stage
    from tests.backbone import smtp_start

    OutgoingEmail.objects.all().delete()
    Sequence.objects.all().delete()
    EmailTemplate.objects.all().delete()
    Lead.objects.filter(email__endswith="@bench.example").delete()
    if not Pipeline.objects.filter(is_default=True).exists():
        pipeline = Pipeline.objects.create(name="Bench", is_default=True)
        Stage.objects.create(pipeline=pipeline, name="New", sequence=0)
    template = email_template_create(
        user=SYSTEM,
        data={
            "name": "Bench",
            "subject": "Welcome {{ recipient.first_name }}",
            "body_html": "<p>Hi {{ recipient.name }} of {{ lead.company_name }}</p>",
        },
    )
    smtp = smtp_start()
    load = os.getloadavg()[0]
    print(f"load average at start: {load:.2f}; {args.enrollments} enrollments, {args.workers} workers")
    base = baseline_smtp(args.enrollments, smtp)
    print("| what | seconds | enrollments/s | failed |\n|---|---:|---:|---:|")
    rate = args.enrollments / base
    print(
        f"| baseline: {args.enrollments} messages, one process, one connection | {base:.1f} | {rate:.0f} | |"
    )
    for kind in args.kinds.split(","):
        if args.one_by_one and kind != "wait":
            result = run_scenario(kind, args, smtp, template, count=args.one_by_one, bulk=False)
            seconds, rate, failed = result["seconds"], result["per_second"], result["failed"]
            print(
                f"| baseline: {kind} step written one by one, {args.one_by_one}, {args.workers} workers "
                f"| {seconds:.1f} | {rate:.0f} | {failed} |"
            )
        result = run_scenario(kind, args, smtp, template)
        seconds, rate, failed = result["seconds"], result["per_second"], result["failed"]
        print(
            f"| {kind} step, {args.enrollments}, {args.workers} workers, bulk | {seconds:.1f} | {rate:.0f} "
            f"| {failed} |"
        )
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    smtp.controller.stop()


if __name__ == "__main__":
    main()
