"""Stage history: every move of a lead or opportunity between stages, who made it and when."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class StageChange(models.Model):
    """One change of stage. ``from_stage`` is empty for the record's first stage (its creation).

    Concrete histories (LeadStageChange here, sales.OpportunityStageChange) add the record's foreign
    key as ``record`` with ``related_name="stage_changes"``, so services and selectors handle both
    kinds alike without crm importing sales. Stage names are copied: history outlives a deleted stage.
    """

    from_stage = models.ForeignKey(
        "crm.Stage", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    to_stage = models.ForeignKey("crm.Stage", on_delete=models.SET_NULL, null=True, related_name="+")
    from_stage_name = models.CharField(max_length=120, blank=True)
    to_stage_name = models.CharField(max_length=120, blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        abstract = True
        ordering = ["changed_at", "id"]

    def __str__(self) -> str:
        if not self.from_stage_name:
            return f"Entered {self.to_stage_name}"
        return f"{self.from_stage_name} → {self.to_stage_name}"


class LeadStageChange(StageChange):
    record = models.ForeignKey(
        "crm.Lead",
        on_delete=models.CASCADE,
        related_name="stage_changes",
        db_index=False,  # the (record, changed_at) index serves lookups by record
    )

    class Meta(StageChange.Meta):
        verbose_name = "lead stage change"
        indexes = [models.Index(fields=["record", "changed_at"], name="crm_leadstage_record_at")]
