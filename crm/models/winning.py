"""Win-probability models: per pipeline and kind of record, the won/lost counts naive Bayes learns from."""

from django.db import models

from .pipeline import Pipeline


class WinModelKind(models.TextChoices):
    LEAD = "lead", "Leads"
    OPPORTUNITY = "opportunity", "Opportunities"


class WinModel(models.Model):
    """What the closed leads (or opportunities) of one pipeline say about winning.

    ``won`` and ``lost`` count the closed records (a converted lead is won); ``counts`` holds, per
    variable, how many won and lost records had each value: ``{"priority": {"high": [12, 3], ...},
    "tags": {"7": [4, 1]}, ...}`` (ids as strings, an empty value as ""). crm.win_probability keeps it
    current as records close and reopen, and rebuilds it from the whole history on demand.
    """

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="win_models")
    kind = models.CharField(max_length=12, choices=WinModelKind.choices)
    won = models.PositiveIntegerField(default=0)
    lost = models.PositiveIntegerField(default=0)
    counts = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["pipeline", "kind"]
        constraints = [
            models.UniqueConstraint(fields=["pipeline", "kind"], name="crm_winmodel_one_per_pipeline_kind")
        ]

    def __str__(self) -> str:
        return f"{self.pipeline} · {self.get_kind_display()}: {self.won} won, {self.lost} lost"

    @property
    def closed(self) -> int:
        return self.won + self.lost
