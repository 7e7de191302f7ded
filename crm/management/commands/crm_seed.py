"""manage.py crm_seed: fill the database with a large, realistic, reproducible CRM data set."""

import argparse
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from crm.seeding import Progress, SeedRefused, SeedSizes, crm_seed


def _count(value: str) -> int:
    try:
        number = int(value.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return number


class Command(BaseCommand):
    help = (
        "Generate a large, realistic CRM data set (by default 1,000,000 leads, 200,000 opportunities, "
        "100,000 accounts, 300,000 contacts, 2,000,000 activities and 50 sales users) for benchmarks "
        "and demos. Sizes not given follow --leads in those proportions (--leads 5000000: 1,000,000 "
        "opportunities, 500,000 accounts, 1,500,000 contacts, 10,000,000 activities, 250 users). "
        "The same --seed and --end-date give the same data. Refuses a database that already "
        "holds CRM records unless --force is given. Everything is written in one transaction; on "
        "PostgreSQL the CRM tables stay locked until it commits, so seed a database nobody is using."
    )

    def add_arguments(self, parser):
        defaults = SeedSizes()
        parser.add_argument(
            "--leads",
            type=_count,
            default=defaults.leads,
            help=f"how many leads to generate (default {defaults.leads:,})",
        )
        for name in ("opportunities", "accounts", "contacts", "activities", "users"):
            per_million = getattr(defaults, name)
            parser.add_argument(
                f"--{name}",
                type=_count,
                default=None,
                help=f"how many {name} to generate (default {per_million:,} per 1,000,000 leads)",
            )
        parser.add_argument(
            "--seed", type=int, default=0, help="random seed; the same seed gives the same data"
        )
        parser.add_argument(
            "--end-date",
            type=date.fromisoformat,
            default=None,
            metavar="YYYY-MM-DD",
            help="dates spread over the two years before this day (default: today, UTC)",
        )
        parser.add_argument(
            "--force",
            "--append",
            dest="force",
            action="store_true",
            help="seed even though the database already holds CRM records, adding to them",
        )
        parser.add_argument(
            "--jobs",
            type=int,
            default=1,
            help=(
                "PostgreSQL: build the indexes on this many connections at once, after committing the "
                "records (like pg_restore --jobs); only into a database without CRM records, and a "
                "failure removes the records again (default 1: everything in one transaction)"
            ),
        )
        parser.add_argument("--no-progress", action="store_true", help="print no progress, only the summary")

    def handle(self, *args, seed, end_date, force, jobs, no_progress, verbosity, **options):
        try:
            sizes = SeedSizes.scaled(
                options["leads"],
                **{name: options[name] for name in SeedSizes.__dataclass_fields__ if name != "leads"},
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        progress = Progress(
            lambda text: self.stdout.write(text, ending=""),
            flush=self.stdout.flush,
            interactive=self.stdout.isatty(),
            enabled=verbosity > 0 and not no_progress,
        )
        if verbosity > 0:
            self.stdout.write(
                f"Seeding {sizes.leads:,} leads, {sizes.opportunities:,} opportunities, "
                f"{sizes.accounts:,} accounts, {sizes.contacts:,} contacts, {sizes.activities:,} activities "
                f"and {sizes.users:,} sales users (seed {seed})."
            )
        try:
            result = crm_seed(
                sizes=sizes, seed=seed, end_date=end_date, force=force, progress=progress, jobs=jobs
            )
        except SeedRefused as exc:
            raise CommandError(str(exc)) from exc
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if verbosity > 0:
            rate = result.total_rows / result.seconds if result.seconds else 0
            self.stdout.write(
                self.style.SUCCESS(
                    f"Seeded {result.total_rows:,} rows in {result.seconds:.1f}s ({rate:,.0f} rows/s)."
                )
            )
