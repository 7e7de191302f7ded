"""What an import did or would do: counts, the rejected rows and notes, shared by every entry point."""

from dataclasses import dataclass, field

CLEARED_LISTED = 10_000  # fields to clear listed in a result; the notice counts them all


@dataclass(frozen=True, slots=True)
class RowError:
    """One bad cell (or row, when ``column`` is empty): where it is, what it holds and why it is refused."""

    row: int
    column: str
    value: str
    message: str

    def as_dict(self) -> dict:
        return {"row": self.row, "column": self.column, "value": self.value, "message": self.message}

    def __str__(self) -> str:
        where = f"row {self.row}" + (f", column {self.column}" if self.column else "")
        value = f" ({self.value!r})" if self.value else ""
        return f"{where}{value}: {self.message}"


@dataclass(frozen=True, slots=True)
class PreviewRow:
    """A row that will create or change a record, for the admin preview."""

    row: int
    action: str  # "new" or "updated"
    label: str
    changes: tuple[str, ...] = ()
    cleared: tuple[str, ...] = ()  # of the changes, the fields the update empties


@dataclass(frozen=True, slots=True)
class ClearedField:
    """A field an update empties, because its cell is empty and the user chose "empty cells clear fields"."""

    row: int
    column: str

    def as_dict(self) -> dict:
        return {"row": self.row, "column": self.column}


@dataclass
class ImportResult:
    """The outcome of one import, committed or not.

    ``file_errors`` are problems with the file as a whole (empty, not UTF-8, unknown columns...);
    ``errors`` are bad rows. Either one means nothing was written.
    """

    kind: str
    dry_run: bool
    filename: str = ""
    rows: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)
    file_errors: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    new_tags: list[str] = field(default_factory=list)
    preview: list[PreviewRow] = field(default_factory=list)
    committed: bool = False
    # Without it an empty cell leaves an updated record's field unchanged (a new record gets the default).
    clear_empty: bool = False
    cleared: list[ClearedField] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and not self.file_errors

    @property
    def error_rows(self) -> int:
        """How many rows were rejected (a row may have several bad cells)."""
        return len({error.row for error in self.errors})

    @property
    def counts(self) -> dict[str, int]:
        return {
            "rows": self.rows,
            "new": self.new,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "errors": self.error_rows,
        }

    def as_dict(self) -> dict:
        return {
            "kind": self.kind,
            "dry_run": self.dry_run,
            "committed": self.committed,
            **self.counts,
            "file_errors": list(self.file_errors),
            "row_errors": [error.as_dict() for error in self.errors],
            "notices": list(self.notices),
            "new_tags": list(self.new_tags),
            "clear_empty": self.clear_empty,
            "cleared": [cleared.as_dict() for cleared in self.cleared[:CLEARED_LISTED]],
        }

    def summary(self) -> str:
        if self.file_errors:
            return "The file was not imported: " + " ".join(self.file_errors)
        if self.errors:
            return (
                f"{self.error_rows} of {self.rows} rows are invalid; nothing was imported. "
                "Fix them and import the file again."
            )
        verb = "would be" if not self.committed else "were"
        return (
            f"{self.rows} rows: {self.new} {verb} created, {self.updated} {verb} updated, "
            f"{self.unchanged} unchanged."
        )
