"""The opportunities' rollup: their count, amount and weighted amount by pipeline, stage, status, owner,
currency, close month and whether they came from a lead, kept by triggers (sales.rollups) so boards, the
dashboard and the forecast read a few hundred rows whatever the table size."""

from django.db import models


class OpportunityRollup(models.Model):
    # Plain integers, not foreign keys (see crm.models.LeadRollup). 0 = no owner; close_month is
    # year × 100 + month, 0 for no close date.
    pipeline_id = models.BigIntegerField()
    stage_id = models.BigIntegerField()
    status = models.CharField(max_length=10)
    owner_id = models.BigIntegerField(help_text="0: no owner.")
    currency = models.CharField(max_length=3)
    close_month = models.IntegerField(help_text="Year × 100 + month of the close date; 0: none.")
    from_lead = models.SmallIntegerField(help_text="1: converted from a lead.")
    n = models.BigIntegerField(default=0)
    amount_cents = models.BigIntegerField(default=0)
    # Σ amount in cents × probability (percent): the weighted amount is this / 10,000, exact.
    weighted_cents_percent = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "pipeline_id",
                    "stage_id",
                    "status",
                    "owner_id",
                    "currency",
                    "close_month",
                    "from_lead",
                ],
                name="sales_opportunityrollup_key",
            )
        ]
        # A rep's figures and forecast read the rows of the owners they see (a few hundred of 110,000
        # at 5M leads).
        indexes = [models.Index(fields=["owner_id"], name="sales_opprollup_owner")]

    def __str__(self) -> str:
        return f"pipeline {self.pipeline_id} stage {self.stage_id} {self.status} {self.close_month}: {self.n}"


class OpportunityBoardRollup(models.Model):
    """The opportunities' count and amount by pipeline, stage and owner alone: what a board's column
    headers read. The full rollup above also keeps currency, close month and origin for the forecast,
    which makes it 22,000 rows at 1M leads and 110,000 at 5M; this one stays at stages × owners."""

    pipeline_id = models.BigIntegerField()
    stage_id = models.BigIntegerField()
    owner_id = models.BigIntegerField(help_text="0: no owner.")
    n = models.BigIntegerField(default=0)
    amount_cents = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["pipeline_id", "stage_id", "owner_id"], name="sales_opportunityboardrollup_key"
            )
        ]

    def __str__(self) -> str:
        return f"pipeline {self.pipeline_id} stage {self.stage_id} owner {self.owner_id}: {self.n}"


class WonFromLeadRollup(models.Model):
    """The won deals converted from a lead, counted and summed by the **lead's** owner and pipeline
    (and the deal's currency and close month, to convert): the last step of the conversion funnel, "won
    deals from these leads", for a reader who sees some owners' leads. Kept by triggers on the deals
    and on the leads (a lead handed to another owner takes its won deal's figures along)."""

    lead_owner_id = models.BigIntegerField(help_text="The lead's owner; 0: none.")
    lead_pipeline_id = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    close_month = models.IntegerField(help_text="Year × 100 + month of the close date; 0: none.")
    n = models.BigIntegerField(default=0)
    amount_cents = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["lead_owner_id", "lead_pipeline_id", "currency", "close_month"],
                name="sales_wonfromleadrollup_key",
            )
        ]

    def __str__(self) -> str:
        return f"lead owner {self.lead_owner_id} pipeline {self.lead_pipeline_id}: {self.n}"
