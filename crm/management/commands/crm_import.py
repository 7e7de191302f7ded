"""Import leads, contacts or accounts from a CSV or XLSX file: all rows or none."""

import os

from django.core.management.base import BaseCommand, CommandError

from crm.actors import SYSTEM
from crm.importing import import_file, import_kinds
from crm.seeding.progress import Progress


class Command(BaseCommand):
    help = (
        "Import a CSV or XLSX file of leads, contacts or accounts. Existing records are matched by "
        "their natural key (lead and contact: email; account: name) and updated. A file with any bad "
        "row imports nothing and the command lists every bad row and exits with status 1."
    )

    # The system checks cost a third of a second per run and check configuration, which `manage.py
    # check` and the test suite cover; an import is a data path run many times over.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("kind", choices=import_kinds())
        parser.add_argument("file", help="path of the .csv or .xlsx file")
        parser.add_argument("--dry-run", action="store_true", help="validate and count, write nothing")
        parser.add_argument(
            "--clear-empty",
            action="store_true",
            help="empty cells clear fields (without it, an empty cell leaves an updated field unchanged)",
        )
        parser.add_argument("--no-progress", action="store_true", help="print no progress")

    def handle(self, *args, kind, file, dry_run, clear_empty, no_progress, **options):
        try:
            handle = open(file, "rb")  # noqa: SIM115 - closed below, after the size check
        except OSError as exc:
            raise CommandError(f"Cannot open {file}: {exc.strerror}.") from None
        progress = Progress.to(self.stdout, enabled=not no_progress and options["verbosity"] > 0)
        with handle:
            try:
                result = import_file(
                    kind=kind,
                    file=handle,
                    size=os.fstat(handle.fileno()).st_size,
                    filename=os.path.basename(file),
                    dry_run=dry_run,
                    clear_empty=clear_empty,
                    user=SYSTEM,
                    progress=progress,
                )
            finally:
                progress.close()

        for notice in result.notices:
            self.stdout.write(notice)
        if result.new_tags:
            verb = "would be created" if dry_run else "created"
            self.stdout.write(f"New tags {verb}: {', '.join(result.new_tags)}")
        if not result.ok:
            for error in result.file_errors:
                self.stderr.write(error)
            for error in result.errors:
                self.stderr.write(str(error))
            raise CommandError(result.summary())
        for cleared in result.cleared:
            self.stdout.write(f"row {cleared.row}: {cleared.column} {'would be ' if dry_run else ''}cleared")
        prefix = "Dry run, nothing written. " if dry_run else ""
        self.stdout.write(self.style.SUCCESS(prefix + result.summary()))
