"""Recompute every lead's score from the current scoring rules, in bulk (after changing the rules)."""

from django.core.management.base import BaseCommand

from crm.scoring import lead_scores_refresh


class Command(BaseCommand):
    help = "Recompute the score and its breakdown of every lead from the active scoring rules."

    def handle(self, *args, **options):
        written = lead_scores_refresh()
        self.stdout.write(self.style.SUCCESS(f"Recomputed the scores of {written} leads."))
