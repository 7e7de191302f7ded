"""Refit the churn risk model on the accounts' history and rescore every customer account now (beat runs
the same daily: activities.tasks.churn_retrain)."""

import time

from django.core.management.base import BaseCommand

from activities.churn import churn_retrain
from crm.actors import SYSTEM


class Command(BaseCommand):
    help = "Refit the churn risk points model and rescore every customer account."

    def handle(self, *args, **options):
        started = time.monotonic()
        result = churn_retrain(user=SYSTEM)
        how = "fitted on" if result["fitted"] else "with the default points, too little history:"
        self.stdout.write(
            f"{result['scored']} accounts scored in {time.monotonic() - started:.1f} s; model {how} "
            f"{result['accounts']} accounts, {result['churned']} churned."
        )
