"""Export leads, contacts, accounts, opportunities or activities as CSV, XLSX or JSON."""

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from crm.actors import SYSTEM
from crm.importing import EXPORT_FORMATS, export_kinds, export_queryset, export_schema
from crm.seeding.progress import Progress


class Command(BaseCommand):
    help = (
        "Export every record of a kind with the import's columns (relations by name), so the file "
        "imports back. Cells a spreadsheet would run as formulas are escaped."
    )

    def add_arguments(self, parser):
        parser.add_argument("kind", choices=export_kinds())
        parser.add_argument(
            "--format", choices=tuple(EXPORT_FORMATS), help="default: the output's extension, else csv"
        )
        parser.add_argument("--output", "-o", help="file to write; default: standard output")
        parser.add_argument("--no-progress", action="store_true", help="print no progress")

    def handle(self, *args, kind, format, output, no_progress, **options):
        fmt = format or (Path(output).suffix.lstrip(".").lower() if output else "") or "csv"
        if fmt not in EXPORT_FORMATS:
            raise CommandError(f"Unknown format {fmt!r}: use --format {'|'.join(EXPORT_FORMATS)}.")
        if fmt == "xlsx" and not output:
            raise CommandError("An XLSX export needs --output FILE.")
        queryset = export_schema(kind).model.objects.all()
        # Progress goes to stderr when the export itself goes to stdout.
        progress = Progress.to(
            self.stdout if output else self.stderr, enabled=bool(output) and not no_progress
        )
        total = queryset.count() if progress.enabled else 0
        try:
            exported = export_queryset(
                kind=kind,
                queryset=queryset,
                fmt=fmt,
                progress=lambda done: progress("exporting", done, total),
                user=SYSTEM,
            )
        finally:
            progress.close()
        if output:
            try:
                Path(output).write_bytes(exported.content)
            except OSError as exc:
                raise CommandError(f"Cannot write {output}: {exc.strerror}.") from None
            self.stdout.write(self.style.SUCCESS(f"Exported {exported.rows} {kind} to {output}."))
        elif self.stdout._out is sys.stdout:
            sys.stdout.buffer.write(exported.content)
            sys.stdout.flush()
        else:
            self.stdout.write(exported.content.decode("utf-8-sig"), ending="")
