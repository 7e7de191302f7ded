"""Bulk import and export of CRM records: one engine behind the admin, the API and the commands.

result = import_file(kind="leads", file=upload, filename="leads.csv", dry_run=True)
result.ok, result.counts, result.errors          # ImportResult; nothing written unless ok
export = export_queryset(kind="leads", queryset=filtered, fmt="xlsx")   # ExportFile
"""

from .engine import import_file, import_table, normalise_header
from .exporting import EXPORT_FORMATS, ExportFile, export_queryset, export_rows
from .reading import ImportFileError, Table, open_table
from .result import ClearedField, ImportResult, PreviewRow, RowError
from .schemas import (
    export_kinds,
    export_schema,
    import_kinds,
    import_schema,
    register_schema,
    schema_for_model,
)

__all__ = [
    "EXPORT_FORMATS",
    "ClearedField",
    "ExportFile",
    "ImportFileError",
    "ImportResult",
    "PreviewRow",
    "RowError",
    "Table",
    "export_kinds",
    "export_queryset",
    "export_rows",
    "export_schema",
    "import_file",
    "import_kinds",
    "import_schema",
    "import_table",
    "normalise_header",
    "open_table",
    "register_schema",
    "schema_for_model",
]
