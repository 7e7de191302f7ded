"""What the activities app tells crm about itself, registered from ActivitiesConfig.ready()."""

from django.db import models

from activities.attachables import register_attachable
from activities.importing import ACTIVITIES
from activities.models import Activity
from activities.selectors import activity_next_by_record
from activities.services import lead_last_activity_refresh, record_attachments_delete
from crm import registries
from crm.importing.schemas import register_schema
from crm.models import Account, Contact, Lead
from crm.scoring import lead_score_refresh
from crm.search_indexes import register_trigram_indexes
from sales.models import Opportunity


def _leads_losing_activities(instance: models.Model):
    """Deleting a record other than a lead or an activity (an opportunity, a contact) deletes the
    activities linked to it by a cascading key: their leads' last activity may change."""
    if isinstance(instance, Lead | Activity):
        return None  # a deleted lead takes its activities along; activity_delete refreshes its lead
    links = [
        field.name
        for field in Activity._meta.concrete_fields
        if field.is_relation
        and field.remote_field.on_delete is models.CASCADE
        and isinstance(instance, field.related_model)
    ]
    if not links:
        return None
    condition = models.Q()
    for name in links:
        condition |= models.Q(**{name: instance.pk})
    lead_ids = set(
        Activity.objects.filter(condition, lead__isnull=False).values_list("lead_id", flat=True).distinct()
    )
    if not lead_ids:
        return None

    def after() -> None:
        lead_last_activity_refresh(lead_ids=lead_ids)
        for lead in Lead.objects.filter(pk__in=lead_ids):
            lead_score_refresh(lead=lead)

    return after


def _attachments_of_deleted_record(instance: models.Model):
    return record_attachments_delete(record=instance)


def register_with_crm() -> None:
    for record_type, model in (
        ("lead", Lead),
        ("opportunity", Opportunity),
        ("account", Account),
        ("contact", Contact),
        ("activity", Activity),
    ):
        register_attachable(record_type, model)
    registries.register_delete_effect(_attachments_of_deleted_record)
    register_trigram_indexes("activities_activity", ("subject", "description"))
    register_schema(ACTIVITIES)
    registries.register_next_activity_source(activity_next_by_record)
    registries.register_delete_effect(_leads_losing_activities)
    registries.register_seed_table(
        registries.SeedTable(
            label="activities",
            model_label="activities.Activity",
            base_id="activity",
            fields="ACTIVITY_FIELDS",
            rows="activities",
            # Written around the services: the leads' last activity is recomputed once, set-based.
            after_write=lead_last_activity_refresh,
        )
    )
