"""Rebuild the win-probability models from the whole won and lost history, in a few grouped queries."""

from django.core.management.base import BaseCommand, CommandError

from crm.models import Pipeline
from crm.win_probability import SPECS, min_closed, win_models_rebuild


class Command(BaseCommand):
    help = (
        "Rebuild the naive Bayes win-probability model of every pipeline (or of --pipeline) for leads "
        "and opportunities from all closed records. The services keep the models current as records "
        "close and reopen; run this after writes that bypass them (SQL, loaddata) or to reconcile."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--pipeline", type=int, action="append", help="Only this pipeline id (repeatable)."
        )
        parser.add_argument(
            "--kind", choices=[spec.kind for spec in SPECS], help="Only leads or only opportunities."
        )

    def handle(self, *args, pipeline=None, kind=None, **options):
        if pipeline:
            missing = set(pipeline) - set(
                Pipeline.objects.filter(pk__in=pipeline).values_list("pk", flat=True)
            )
            if missing:
                raise CommandError(f"No pipeline with id {', '.join(map(str, sorted(missing)))}.")
        kinds = [spec for spec in SPECS if kind in (None, spec.kind)]
        models = win_models_rebuild(kinds=kinds, pipeline_ids=pipeline)
        names = dict(Pipeline.objects.values_list("pk", "name"))
        needed = min_closed()
        for model in models:
            status = "" if model.closed >= needed else f" (fewer than {needed}: no estimates yet)"
            self.stdout.write(
                f"{names[model.pipeline_id]} · {model.get_kind_display().lower()}: "
                f"{model.won} won, {model.lost} lost{status}"
            )
        self.stdout.write(self.style.SUCCESS(f"Rebuilt {len(models)} win-probability models."))
