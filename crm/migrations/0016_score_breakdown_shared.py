"""Leads point at a shared ScoreBreakdown instead of each storing the lines of its own."""

import hashlib
import json

import django.db.models.deletion
from django.db import migrations, models


def _lines(stored):
    """Lines as ScoreBreakdown keeps them, from a breakdown stored either way a lead stored it."""
    lines = []
    for line in stored or []:
        if isinstance(line, dict):  # stored whole, before breakdowns were stored compact
            line = [line["criterion"], line["value"], line["points"]]
        lines.append(list(line))
    return lines


def share_breakdowns(apps, schema_editor):
    ScoreBreakdown = apps.get_model("crm", "ScoreBreakdown")
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT score_breakdown_old FROM crm_lead WHERE score_breakdown_old IS NOT NULL"
        )
        stored = [row[0] for row in cursor.fetchall()]
    pairs = []  # (breakdown as stored, its ScoreBreakdown id)
    ids = {}
    for text in stored:
        lines = _lines(json.loads(text) if isinstance(text, str) else text)
        if not lines:
            continue  # no points: no breakdown
        compact = json.dumps(lines, separators=(",", ":"))
        digest = hashlib.sha256(compact.encode()).hexdigest()
        if digest not in ids:
            ids[digest] = ScoreBreakdown.objects.create(lines=lines, digest=digest).pk
        pairs.append((text if isinstance(text, str) else json.dumps(text), ids[digest]))
    if not pairs:
        return
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One pass over the leads (a hash join on the stored JSON), not one per breakdown.
            values = ", ".join(["(%s::jsonb, %s)"] * len(pairs))
            cursor.execute(
                "UPDATE crm_lead AS lead SET score_breakdown_id = map.id "
                f"FROM (VALUES {values}) AS map (old, id) WHERE lead.score_breakdown_old = map.old",
                [value for pair in pairs for value in pair],
            )
        else:
            cursor.executemany(
                "UPDATE crm_lead SET score_breakdown_id = %s WHERE score_breakdown_old = %s",
                [(pk, text) for text, pk in pairs],
            )


def unshare_breakdowns(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "UPDATE crm_lead SET score_breakdown_old = "
            "(SELECT b.lines FROM crm_scorebreakdown b WHERE b.id = crm_lead.score_breakdown_id) "
            "WHERE score_breakdown_id IS NOT NULL"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0015_lead_partial_fk_indexes"),
    ]

    operations = [
        migrations.CreateModel(
            name="ScoreBreakdown",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("lines", models.JSONField(editable=False)),
                ("digest", models.CharField(editable=False, max_length=64)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("digest",),
                        name="crm_scorebreakdown_digest_unique",
                        violation_error_message="This score breakdown is already stored.",
                    )
                ],
            },
        ),
        migrations.RenameField(model_name="lead", old_name="score_breakdown", new_name="score_breakdown_old"),
        migrations.AddField(
            model_name="lead",
            name="score_breakdown",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="crm.scorebreakdown",
            ),
        ),
        migrations.RunPython(share_breakdowns, unshare_breakdowns),
        migrations.RemoveField(model_name="lead", name="score_breakdown_old"),
    ]
