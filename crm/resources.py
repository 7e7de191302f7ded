"""django-import-export resources for the CRM records, backed by the import engine in crm.importing.

Code that speaks django-import-export (``resource.import_data(dataset)``, ``resource.export()``) gets the
same columns, rules and speed as the admin, the API and the commands: ``import_data`` runs the engine
on the dataset (all or nothing, bulk writes) instead of saving row by row, and ``export`` reads the
engine's export rows. The stock per-row machinery is not used.
"""

import tablib
from django.core.exceptions import ValidationError
from import_export import resources
from import_export.results import Error, InvalidRow, Result, RowResult

from crm.actors import person
from crm.importing import ImportResult, Table, export_rows, export_schema, import_schema, import_table
from crm.importing.exporting import text_cell


class EngineResource(resources.ModelResource):
    """A ModelResource whose import and export are the engine's; subclasses name their ``kind``."""

    kind = ""

    def get_queryset(self):
        return export_schema(self.kind).model.objects.all()

    def import_data(
        self, dataset, dry_run=False, raise_errors=False, use_transactions=None, **kwargs
    ) -> Result:
        """Import ``dataset`` (its headers are the columns) as ``kwargs["user"]``, who owns the new records
        and may change only what the services let them change."""
        if kwargs.get("user") is None:
            raise TypeError("import_data needs the acting user (user=...): a system import passes SYSTEM.")
        schema = import_schema(self.kind)
        table = Table(
            format="dataset",
            header=list(dataset.headers or []),
            rows=((number, list(row)) for number, row in enumerate(dataset, start=2)),
            row_estimate=len(dataset),
        )
        outcome = import_table(
            schema=schema,
            table=table,
            result=ImportResult(kind=self.kind, dry_run=dry_run),
            default_owner=person(kwargs["user"]),
            user=kwargs["user"],
        )
        result = Result()
        result.add_dataset_headers(list(dataset.headers or []))
        result.total_rows = outcome.rows
        result.totals[RowResult.IMPORT_TYPE_NEW] = outcome.new
        result.totals[RowResult.IMPORT_TYPE_UPDATE] = outcome.updated
        result.totals[RowResult.IMPORT_TYPE_SKIP] = outcome.unchanged
        result.totals[RowResult.IMPORT_TYPE_INVALID] = outcome.error_rows
        for message in outcome.file_errors:
            result.append_base_error(Error(ValueError(message)))
        by_row: dict[int, dict[str, list[str]]] = {}
        for error in outcome.errors:
            by_row.setdefault(error.row, {}).setdefault(error.column or "__all__", []).append(error.message)
        for number, messages in by_row.items():
            result.invalid_rows.append(InvalidRow(number, ValidationError(messages), ()))
        if raise_errors and not outcome.ok:
            raise ValidationError(outcome.summary())
        return result

    def export(self, queryset=None, **kwargs) -> tablib.Dataset:
        """The records as text cells, formula-escaped, exactly as the CSV export writes them."""
        schema = export_schema(self.kind)
        dataset = tablib.Dataset(headers=list(schema.export_columns))
        for row in export_rows(schema, queryset if queryset is not None else self.get_queryset()):
            dataset.append([text_cell(value) for value in row])
        return dataset


def _resource(kind: str, model_label: str) -> type[EngineResource]:
    from django.apps import apps

    model = apps.get_model(model_label)
    meta = type("Meta", (), {"model": model, "fields": export_schema(kind).export_columns})
    return type(
        f"{model.__name__}Resource", (EngineResource,), {"kind": kind, "Meta": meta, "__module__": __name__}
    )


LeadResource = _resource("leads", "crm.Lead")
ContactResource = _resource("contacts", "crm.Contact")
AccountResource = _resource("accounts", "crm.Account")


def opportunity_resource() -> type[EngineResource]:
    """Export only; built on demand because crm does not import sales at module level."""
    return _resource("opportunities", "sales.Opportunity")


def activity_resource() -> type[EngineResource]:
    """Export only; built on demand because crm does not import activities at module level."""
    return _resource("activities", "activities.Activity")
