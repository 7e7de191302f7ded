"""What the activities app tells crm about itself, registered from ActivitiesConfig.ready()."""

import datetime
from functools import partial

from django.db import models
from django.utils import timezone

from activities import privacy
from activities.attachables import register_attachable
from activities.importing import ACTIVITIES
from activities.mail.outbound import sent_emails_log
from activities.models import Activity, ActivityStatus, Article, Ticket, TicketMessage
from activities.reports import register_reports
from activities.selectors import activity_next_by_record
from activities.service import selectors as service_selectors  # noqa: F401  (registers ticket access)
from activities.services import (
    account_last_activity_refresh,
    activities_create_bulk,
    activity_create,
    contact_last_activity_refresh,
    last_activity_recount_statements,
    lead_last_activity_refresh,
    opportunity_last_activity_refresh,
    record_attachments_delete,
)
from crm import registries
from crm.importing.schemas import register_schema
from crm.models import Account, Contact, Lead
from crm.scoring import lead_score_refresh
from crm.search import SearchSource, register_search_source
from crm.search_indexes import register_trigram_indexes
from sales.models import Opportunity
from sales.performance import register_activity_counter

# The records an activity names whose last activity the activity services keep, by link.
_LAST_ACTIVITY_LINKS = {
    "lead": Lead,
    "opportunity": Opportunity,
    "contact": Contact,
    "account": Account,
}


def _records_losing_activities(instance: models.Model):
    """Deleting a record (an opportunity, a contact, an account, a lead) deletes the activities linked
    to it by a cascading key: the other records those activities name (their lead, deal, contact,
    account) may lose their newest activity, and a lead its points for recent activity."""
    if isinstance(instance, Activity):
        return None  # activity_delete refreshes the records of the activity it deletes
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
    touched = {
        link: set(
            Activity.objects.filter(condition, **{f"{link}__isnull": False})
            .values_list(f"{link}_id", flat=True)
            .distinct()
        )
        for link, model in _LAST_ACTIVITY_LINKS.items()
        if not isinstance(instance, model)  # the deleted record itself needs nothing
    }
    if not any(touched.values()):
        return None

    def after() -> None:
        refresh = {
            "lead": lambda ids: lead_last_activity_refresh(lead_ids=ids),
            "opportunity": lambda ids: opportunity_last_activity_refresh(opportunity_ids=ids),
            "contact": lambda ids: contact_last_activity_refresh(contact_ids=ids),
            "account": lambda ids: account_last_activity_refresh(account_ids=ids),
        }
        for link, ids in touched.items():
            if ids:
                refresh[link](ids)
        for lead in Lead.objects.filter(pk__in=touched.get("lead", ())):
            lead_score_refresh(lead=lead)

    return after


def _activity_data(*, record, activity_type, subject, description="", due_date=None, completed=False):
    link = "lead" if isinstance(record, Lead) else "contact" if isinstance(record, Contact) else None
    if link is None:
        raise TypeError(f"Activities are logged on leads and contacts here, not on {type(record).__name__}.")
    data = {
        link: record,
        "activity_type": activity_type,
        "subject": subject[:200],
        "description": description,
        "due_date": due_date,
        "owner": record.owner,
    }
    if completed:
        data.update(status=ActivityStatus.COMPLETED, completed_at=timezone.now())
    return data


def _activity_write(*, user, record, activity_type, subject, description, due_date, completed):
    """An activity that crm's sequences and template emails log on a lead or a contact, owned by
    the record's owner, through the activity services (the lead is rescored, its event published)."""
    data = _activity_data(
        record=record,
        activity_type=activity_type,
        subject=subject,
        description=description,
        due_date=due_date,
        completed=completed,
    )
    return activity_create(user=user, data=data)


def _activities_write(*, user, items):
    """Many of them at once (a sequence's batch, the emails one connection sent), under the same rules."""
    return activities_create_bulk(user=user, rows=[_activity_data(**item) for item in items])


def activities_logged_by_owner(
    owner_ids: list[int], start: datetime.date, end: datetime.date
) -> dict[int, int]:
    """The activities each of ``owner_ids`` logged (created) from ``start`` to ``end``, for the
    performance board: one grouped query on (owner, created_at)."""
    since = timezone.make_aware(datetime.datetime.combine(start, datetime.time.min))
    activities = Activity.objects.filter(owner__in=owner_ids, created_at__gte=since)
    if end < datetime.date.max:
        next_day = datetime.datetime.combine(end + datetime.timedelta(days=1), datetime.time.min)
        activities = activities.filter(created_at__lt=timezone.make_aware(next_day))
    rows = activities.order_by().values("owner_id").annotate(n=models.Count("pk"))
    return {row["owner_id"]: row["n"] for row in rows}


def _attachments_of_deleted_record(instance: models.Model):
    return record_attachments_delete(record=instance)


def _register_search_sources() -> None:
    """Tickets and knowledge-base articles in the header's global search, after crm's and sales' kinds:
    tickets through their visibility rule (assignee, queue, managers), articles to every agent."""
    register_trigram_indexes("activities_ticket", ("number", "subject", "requester_email"))
    register_trigram_indexes("activities_article", ("title", "keywords"))
    register_search_source(
        SearchSource(
            key="tickets",
            label="Tickets",
            model=Ticket,
            fields=("number", "subject", "requester_email"),
            subtitle=lambda ticket: " · ".join(
                str(part)
                for part in (
                    ticket.get_status_display(),
                    ticket.account,
                    ticket.requester_email,
                    ticket.assignee,
                )
                if part
            ),
            select_related=("account", "assignee"),
            permission="activities.view_ticket",
        )
    )
    register_search_source(
        SearchSource(
            key="articles",
            label="Articles",
            model=Article,
            fields=("title", "keywords"),
            subtitle=lambda article: " · ".join(
                str(part) for part in (article.get_status_display(), article.category) if part
            ),
            select_related=("category",),
            permission="activities.view_article",
        )
    )


def register_with_crm() -> None:
    privacy.register()
    register_reports()
    registries.register_activity_writer(_activity_write, bulk=_activities_write)
    registries.register_sent_email_logger(sent_emails_log)
    register_activity_counter(activities_logged_by_owner)
    for record_type, model in (
        ("lead", Lead),
        ("opportunity", Opportunity),
        ("account", Account),
        ("contact", Contact),
        ("activity", Activity),
        ("ticket", Ticket),
        ("ticket_message", TicketMessage),
    ):
        register_attachable(record_type, model)
    registries.register_delete_effect(_attachments_of_deleted_record)
    register_trigram_indexes("activities_activity", ("subject", "description"))
    _register_search_sources()
    register_schema(ACTIVITIES)
    registries.register_next_activity_source(activity_next_by_record)
    registries.register_delete_effect(_records_losing_activities)
    registries.register_seed_table(
        registries.SeedTable(
            label="activities",
            model_label="activities.Activity",
            base_id="activity",
            fields="ACTIVITY_FIELDS",
            rows="activities",
            # Written around the services: the deals', contacts' and accounts' last activity recomputed
            # once, set-based. A lead's is written with the lead (the generator replays the activities'
            # links first, DataSetGenerator.lead_last_activities), so the biggest table is not rewritten.
            after_write=partial(last_activity_recount_statements, "opportunity", "contact", "account"),
            rewrites=("sales.Opportunity", "crm.Contact", "crm.Account"),
        )
    )
