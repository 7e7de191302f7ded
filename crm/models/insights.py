"""Insights kept per record: an account's churn risk and the fitted points model behind it."""

from django.db import models


class AccountChurnRisk(models.Model):
    """The churn risk of a customer account (0–100) and the reasons behind it, written by the retraining
    job for every account with a won deal (others have none)."""

    account = models.OneToOneField(
        "crm.Account", on_delete=models.CASCADE, primary_key=True, related_name="churn_risk"
    )
    score = models.PositiveSmallIntegerField(db_index=True)
    reasons = models.JSONField(default=list, help_text='[{"code", "text", "points"}], largest first.')
    scored_at = models.DateTimeField()

    class Meta:
        verbose_name = "account churn risk"

    def __str__(self) -> str:
        return f"{self.score}"


class ChurnModel(models.Model):
    """The points of each signal, fitted on the accounts' own history (one row, replaced at each fit)."""

    fitted_at = models.DateTimeField()
    base = models.FloatField(help_text="Log-odds of churn with no signal present.")
    points = models.JSONField(help_text="{signal: log-odds added when present}.")
    accounts = models.PositiveIntegerField(help_text="Customer accounts in the training history.")
    churned = models.PositiveIntegerField(help_text="Of those, how many churned.")
    fitted = models.BooleanField(help_text="False: too little history, the default points were used.")

    class Meta:
        verbose_name = "churn model"

    def __str__(self) -> str:
        return f"churn model of {self.fitted_at:%Y-%m-%d}"


class StageTiming(models.Model):
    """How long deals usually stay in a stage (the mean of the stays that ended, from stage history),
    refreshed daily; a deal in it for longer than CRM_ROTTING_FACTOR × this is rotting."""

    stage = models.OneToOneField(
        "crm.Stage", on_delete=models.CASCADE, primary_key=True, related_name="timing"
    )
    usual_days = models.FloatField()
    stays = models.PositiveIntegerField(help_text="Stays that ended, the mean is over.")
    computed_at = models.DateTimeField()

    class Meta:
        verbose_name = "stage timing"

    def __str__(self) -> str:
        return f"{self.usual_days:.1f} days"
