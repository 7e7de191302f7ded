"""Benchmark: an IMAP poll of a mailbox with 10,000 messages matched to 300,000 contacts (issue 21 item 4;
targets: first run ≤ 60 s, ≤ 2 s when nothing is new).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_i21_imap_bench \\
        .venv/bin/python benchmarks/imap_poll.py [--runs 5]   # BENCH_MESSAGES=10000 BENCH_CONTACTS=300000

The database is migrated first (a fresh one is fine); the contacts are made once and kept for the next
run. A real dovecot (as the tests start it: tests/activities/imap_server.py) is started in a temporary
folder for each run, its mailbox filled with Maildir files (one per message, written directly: what a
delivery agent does), each message from the address of a random contact, one in ten a reply to a message
logged earlier (In-Reply-To), one in fifty with a small PDF. The Message-IDs are new on each run.

Timed: the first poll (``mailbox_poll``: search, fetch in batches, parse, match, write), then ``--runs``
polls with nothing new. Baselines in the same run, against the same server:

* IMAP alone: the same 10,000 messages fetched (BODY.PEEK[]) and parsed by imap-tools, no database;
* IMAP login + UID SEARCH: the least a poll with nothing new can ask the server.

Not a test: numbers go to benchmarks/BENCHMARKS.md.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from _harness import arguments, percentile, setup_django  # noqa: E402

USER, PASSWORD = "sales@bench.example", "bench-password"


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def contacts_ensure(count: int) -> None:
    from crm.models import Account, Contact

    have = Contact.objects.filter(email__endswith="@bench-contacts.example").count()
    if have >= count:
        return
    account = Account.objects.create(name="IMAP benchmark account")
    started = time.perf_counter()
    for start in range(have, count, 5000):
        Contact.objects.bulk_create(
            [
                Contact(
                    first_name=f"First{index}",
                    last_name="Bench",
                    email=f"Person{index}@bench-contacts.example",  # mixed case: matching lowercases
                    account=account if index % 3 == 0 else None,
                )
                for index in range(start, min(start + 5000, count))
            ]
        )
    print(f"made {count - have:,} contacts in {time.perf_counter() - started:.1f} s", flush=True)


def maildir_fill(server, *, messages: int, contacts: int, run: str, thread_ids: list[str]) -> None:
    """One Maildir file per message in the user's new/ folder, owned as dovecot's mail user."""
    import random

    folder = server.folder / "mail" / USER
    for sub in ("new", "cur", "tmp"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    owner = (server.folder / "mail").stat()
    rng = random.Random(21)
    pdf = b"JVBERi0xLjQKJcOkw7zDtsOfCjIgMCBvYmoKPDwvTGVuZ3RoIDMgMCBSPj4Kc3RyZWFtCg=="
    for index in range(messages):
        who = rng.randrange(contacts)
        reply = f"In-Reply-To: {rng.choice(thread_ids)}\r\n" if thread_ids and index % 10 == 0 else ""
        headers = (
            f"From: Person {who} <person{who}@bench-contacts.example>\r\nTo: {USER}\r\n"
            f"Subject: Question {index} about the renewal\r\nDate: Thu, 03 Dec 2026 09:00:00 +0000\r\n"
            f"Message-ID: <{run}-{index}@bench-customer.example>\r\n{reply}MIME-Version: 1.0\r\n"
        )
        text = ("Hello, a question about our contract and the next steps. " * 12 + "\r\n").encode()
        if index % 50 == 0:
            raw = (
                headers + 'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
                "Content-Type: text/plain; charset=utf-8\r\n\r\n"
            ).encode() + text
            raw += (
                b"--b\r\nContent-Type: application/pdf\r\n"
                b'Content-Disposition: attachment; filename="q.pdf"\r\n'
                b"Content-Transfer-Encoding: base64\r\n\r\n" + pdf + b"\r\n--b--\r\n"
            )
        else:
            raw = (headers + "Content-Type: text/plain; charset=utf-8\r\n\r\n").encode() + text
        path = folder / "new" / f"{1700000000 + index}.M{index}P1.bench"
        path.write_bytes(raw)
        os.chown(path, owner.st_uid, owner.st_gid)
    for path in [folder, *folder.iterdir()]:
        os.chown(path, owner.st_uid, owner.st_gid)


def main() -> None:
    args = arguments(__doc__, runs=5, warmup=0)
    messages = int(os.environ.get("BENCH_MESSAGES", "10000"))
    contacts = int(os.environ.get("BENCH_CONTACTS", "300000"))
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    setup_django()
    from django.core.management import call_command
    from imap_tools import AND, MailBoxUnencrypted, U

    from activities.mail import inbound
    from activities.models import EmailMessage
    from crm.actors import SYSTEM
    from tests.activities.imap_server import dovecot_start

    print(f"load before: {uptime()}", flush=True)
    call_command("migrate", verbosity=0)
    contacts_ensure(contacts)
    run = uuid.uuid4().hex[:10]
    thread_ids = list(
        EmailMessage.objects.filter(message_id__endswith="@bench-customer.example")
        .order_by("-id")
        .values_list("message_id", flat=True)[:500]
    )
    folder = Path(tempfile.mkdtemp(prefix="crm-imap-bench-"))
    server = dovecot_start(folder, {USER: PASSWORD})
    try:
        maildir_fill(server, messages=messages, contacts=contacts, run=run, thread_ids=thread_ids)
        mailbox = inbound.mailbox_create(
            user=SYSTEM,
            data={
                "name": f"Bench {run}",
                "host": server.host,
                "port": server.port,
                "use_ssl": False,
                "username": USER,
                "password": PASSWORD,
            },
        )

        # Baseline: IMAP alone (the first SELECT also makes dovecot index the new Maildir files).
        started = time.perf_counter()
        with MailBoxUnencrypted(server.host, server.port).login(USER, PASSWORD) as box:
            uids = box.uids(AND(uid=U(1, "*")))
            fetched = 0
            for start in range(0, len(uids), 200):
                for message in box.fetch(AND(uid=uids[start : start + 200]), mark_seen=False, bulk=True):
                    _ = (message.text, message.attachments, message.from_values, message.headers)
                    fetched += 1
        imap_alone = time.perf_counter() - started
        assert fetched == messages, fetched

        started = time.perf_counter()
        result = inbound.mailbox_poll(mailbox=mailbox)
        first = time.perf_counter() - started
        assert result.error == "", result.error
        assert result.fetched == messages and result.logged + result.duplicates == messages, result

        idle, search = [], []
        for _ in range(args.runs):
            mailbox.refresh_from_db()
            started = time.perf_counter()
            again = inbound.mailbox_poll(mailbox=mailbox)
            idle.append(time.perf_counter() - started)
            assert again.fetched == 0, again
            started = time.perf_counter()
            with MailBoxUnencrypted(server.host, server.port).login(USER, PASSWORD) as box:
                box.uids(AND(uid=U(messages + 1, "*")))
            search.append(time.perf_counter() - started)
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)

    print(f"load after: {uptime()}")
    print(f"\n{messages:,} messages, {contacts:,} contacts; {result}\n")
    print("| what | time | baseline in the same run | target |")
    print("|---|---:|---|---|")
    print(
        f"| first poll, {messages:,} messages | {first:.1f} s "
        f"| IMAP fetch + parse alone {imap_alone:.1f} s | ≤ 60 s |"
    )
    print(
        f"| poll with nothing new (p50 / p95 of {args.runs}) | {percentile(idle, 0.5) * 1000:.0f} / "
        f"{percentile(idle, 0.95) * 1000:.0f} ms | login + UID SEARCH {percentile(search, 0.5) * 1000:.0f} / "
        f"{percentile(search, 0.95) * 1000:.0f} ms | ≤ 2 s |"
    )


if __name__ == "__main__":
    main()
