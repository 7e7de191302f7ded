"""manage.py crm_load_demo: the demo data into an empty CRM only; --reset starts again from the demo."""

import json
import sys

from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.core.management.color import no_style
from django.db import connection, transaction

from crm.audit_versions import audited_models, first_versions_create

FIXTURE = "demo"
FIXTURE_PATH = settings.BASE_DIR / "fixtures" / f"{FIXTURE}.json"


def _fixture_models() -> list[type]:
    """The models whose rows the demo fixture holds, in the fixture's order."""
    labels = []
    for obj in json.loads(FIXTURE_PATH.read_text()):
        if obj["model"] not in labels:
            labels.append(obj["model"])
    return [apps.get_model(label) for label in labels]


def _wiped_models(roots: list[type]) -> list[type]:
    """``roots`` and every model that refers to one of them, directly or through another (their
    history, stage changes, tag links, derived models): what a reset empties. Users, groups, teams and
    settings that refer to none of them stay."""
    wiped = set(roots)
    candidates = apps.get_models(include_auto_created=True)
    grown = True
    while grown:
        grown = False
        for model in candidates:
            if model in wiped:
                continue
            targets = {
                field.related_model
                for field in model._meta.get_fields(include_hidden=True)
                if field.concrete and field.is_relation and field.related_model is not None
            }
            if targets & wiped:
                wiped.add(model)
                grown = True
    return [model for model in candidates if model in wiped]


def crm_record_counts(models: list[type]) -> dict[str, int]:
    return {
        str(model._meta.verbose_name_plural): count
        for model in models
        if (count := model._default_manager.count())
    }


class Command(BaseCommand):
    help = (
        "Load the demo data (fixtures/demo.json) into a CRM that holds no pipelines, stages, tags, lost "
        "reasons, accounts, contacts, leads, opportunities or activities yet; a CRM that holds any is left "
        "exactly as it is. --reset deletes all of those, with their history, and loads the demo again: "
        "it asks for confirmation unless --yes is given."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--reset",
            action="store_true",
            help="delete every CRM record (and its history) and load the demo data again",
        )
        parser.add_argument("--yes", action="store_true", help="do not ask before --reset deletes")

    def handle(self, *args, reset: bool, yes: bool, verbosity: int, **options):
        models = _fixture_models()
        held = crm_record_counts(models)
        if reset:
            if held and not yes:
                self._confirm(held)
            with transaction.atomic():
                self._wipe(_wiped_models(models))
                self._load(verbosity)
            return
        if held:
            summary = ", ".join(f"{count:,} {name}" for name, count in held.items())
            self.stdout.write(
                f"The CRM already holds data ({summary}): the demo data is not loaded, nothing was changed. "
                "To delete everything and start again from the demo: manage.py crm_load_demo --reset "
                "(make demo-reset)."
            )
            return
        with transaction.atomic():
            self._load(verbosity)

    def _confirm(self, held: dict[str, int]) -> None:
        summary = ", ".join(f"{count:,} {name}" for name, count in held.items())
        warning = f"This deletes every CRM record ({summary}) and their history, then loads the demo data."
        if not sys.stdin.isatty():
            raise CommandError(f"{warning} Run it again with --yes to go ahead.")
        answer = input(f"{warning}\nType 'yes' to go ahead: ")
        if answer.strip().lower() != "yes":
            raise CommandError("Reset cancelled: nothing was changed.")

    def _wipe(self, models: list[type]) -> None:
        tables = [model._meta.db_table for model in models]
        statements = connection.ops.sql_flush(no_style(), tables, reset_sequences=True)
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                # TRUNCATE refuses a table with foreign-key checks still deferred in this transaction.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            for sql in statements:
                cursor.execute(sql)
            if connection.vendor == "postgresql":
                cursor.execute("SET CONSTRAINTS ALL DEFERRED")

    def _load(self, verbosity: int) -> None:
        call_command("loaddata", FIXTURE, verbosity=0)
        # Records loaded before loaddata gave them a version (or by an older version of this command).
        for model in audited_models():
            first_versions_create(model)
        if verbosity:
            self.stdout.write(self.style.SUCCESS("Loaded the demo data."))
