"""How activities look as a file (export only), registered with crm's import/export engine."""

from crm.importing.schemas import Schema

ACTIVITIES = Schema(
    kind="activities",
    model_label="activities.Activity",
    verbose="activities",
    columns=(
        "subject",
        "activity_type",
        "description",
        "due_date",
        "completed_at",
        "status",
        "priority",
        "lead",
        "opportunity",
        "contact",
        "account",
        "owner",
        "duration_minutes",
        "recurrence",
    ),
    relation_labels={"opportunity": "name"},
)
