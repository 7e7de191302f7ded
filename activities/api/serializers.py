"""Serializers for activities. Conventions: crm.api.serializers."""

from rest_framework import serializers

from activities.models import Activity, ActivityTemplate
from crm.api.serializers import TIMESTAMPS, label, owner_id, related_id, visible_id
from crm.models import Account, Contact, Lead
from crm.selectors import lead_visible_to
from sales.models import Opportunity
from sales.selectors import opportunity_visible_to


class ActivitySerializer(serializers.ModelSerializer):
    lead_id = visible_id(Lead, lead_visible_to, "lead")
    opportunity_id = visible_id(Opportunity, opportunity_visible_to, "opportunity")
    contact_id = related_id(Contact.objects.all(), "contact")
    account_id = related_id(Account.objects.all(), "account")
    owner_id = owner_id()
    template_id = related_id(ActivityTemplate.objects.filter(is_active=True), "template")
    owner_username = label("owner.username")
    is_overdue = serializers.BooleanField(
        read_only=True, help_text="Not completed or cancelled, and due in the past."
    )

    class Meta:
        model = Activity
        fields = (
            "id",
            "subject",
            "activity_type",
            "description",
            "due_date",
            "completed_at",
            "status",
            "priority",
            "lead_id",
            "opportunity_id",
            "contact_id",
            "account_id",
            "owner_id",
            "owner_username",
            "is_overdue",
            "remind_at",
            "reminded_at",
            "duration_minutes",
            "recurrence",
            "template_id",
            *TIMESTAMPS,
        )
        read_only_fields = ("id", "reminded_at", *TIMESTAMPS)
        validators: list = []
        extra_kwargs = {
            "completed_at": {"help_text": "Set to now when the status becomes completed without one."},
        }


class ActivityTemplateSerializer(serializers.ModelSerializer):
    class Meta:
        model = ActivityTemplate
        fields = (
            "id",
            "name",
            "activity_type",
            "subject",
            "script",
            "default_duration_minutes",
            "follow_up_days",
            "follow_up_type",
            "is_active",
            *TIMESTAMPS,
        )
        read_only_fields = ("id", *TIMESTAMPS)
