"""The leads' rollup: their count and expected revenue by pipeline, stage, status and owner, kept by
triggers (crm.rollups) so boards and the dashboard read a few hundred rows whatever the table size."""

from django.db import models


class LeadRollup(models.Model):
    # Plain integers, not foreign keys: a rollup row outlives nothing and protects nothing, and the
    # triggers that write it must not wait on the referenced rows' locks. 0 = no owner.
    pipeline_id = models.BigIntegerField()
    stage_id = models.BigIntegerField()
    status = models.CharField(max_length=10)
    owner_id = models.BigIntegerField(help_text="0: no owner.")
    n = models.BigIntegerField(default=0)
    expected_revenue_cents = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["pipeline_id", "stage_id", "status", "owner_id"], name="crm_leadrollup_key"
            )
        ]

    def __str__(self) -> str:
        return (
            f"pipeline {self.pipeline_id} stage {self.stage_id} {self.status} owner {self.owner_id}: {self.n}"
        )
