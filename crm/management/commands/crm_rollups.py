"""Check the rollups against a recount of their records, or rebuild them from scratch."""

from django.core.management.base import BaseCommand, CommandError

from crm.rollups import install_triggers, registered_rollups, rollup_differences, rollup_rebuild

# Differences printed per rollup; the count says how many there are in all.
SHOWN = 20


class Command(BaseCommand):
    help = (
        "Recount the rollups (the counts and sums that boards, the dashboard and the forecast read) from "
        "their records and report every difference (--check, the default; exits 1 when any), or rebuild "
        "them from scratch (--rebuild)."
    )

    def add_arguments(self, parser):
        action = parser.add_mutually_exclusive_group()
        action.add_argument("--check", action="store_true", help="Report differences (the default).")
        action.add_argument("--rebuild", action="store_true", help="Recount every rollup and replace it.")

    def handle(self, *args, rebuild: bool, **options):
        if rebuild:
            install_triggers()
            for rollup in registered_rollups():
                rows = rollup_rebuild(rollup)
                self.stdout.write(f"{rollup.name}: rebuilt, {rows} rows.")
            return
        differing = 0
        for rollup in registered_rollups():
            differences = rollup_differences(rollup)
            if not differences:
                self.stdout.write(f"{rollup.name}: exact.")
                continue
            differing += 1
            self.stdout.write(self.style.ERROR(f"{rollup.name}: {len(differences)} rows differ."))
            for difference in differences[:SHOWN]:
                self.stdout.write(
                    f"  {difference.key}: stored {difference.stored}, counted {difference.counted}"
                )
        if differing:
            raise CommandError("Rollups differ from a recount: run `manage.py crm_rollups --rebuild`.")
