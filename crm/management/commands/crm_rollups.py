"""Check the rollups against a recount of their records, or rebuild them from scratch."""

from django.core.management.base import BaseCommand, CommandError

from crm.reached import (
    install_reach_triggers,
    pipelines_rebuild,
    reached_differences,
    reached_rebuild,
    registered_reaches,
)
from crm.rollups import install_triggers, registered_rollups, rollup_differences, rollup_rebuild

# Differences printed per rollup; the count says how many there are in all.
SHOWN = 20


class Command(BaseCommand):
    help = (
        "Recount the rollups (the counts and sums that boards, the dashboard and the forecast read) and "
        "each lead's and deal's furthest stage (what the conversion funnel reads) from their records and "
        "report every difference (--check, the default; exits 1 when any), or rebuild them from scratch "
        "(--rebuild)."
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
            install_reach_triggers()
            for reach in registered_reaches():
                changed = reached_rebuild(reach)
                self.stdout.write(f"furthest stages of {reach.name}: rebuilt, {changed} records changed.")
            pipelines_rebuild()  # clears the pipelines' stale marks
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
        for reach in registered_reaches():
            count, shown = reached_differences(reach, shown=SHOWN)
            if not count:
                self.stdout.write(f"furthest stages of {reach.name}: exact.")
                continue
            differing += 1
            self.stdout.write(self.style.ERROR(f"furthest stages of {reach.name}: {count} records differ."))
            for pk, stored, counted in shown:
                self.stdout.write(f"  record {pk}: stored {stored}, counted {counted}")
        if differing:
            raise CommandError(
                "Rollups or furthest stages differ from a recount: run `manage.py crm_rollups --rebuild`."
            )
