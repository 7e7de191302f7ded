"""Writes for the activities app. The conventions are crm.services'."""

import datetime
import mimetypes
import os
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any

import markdown
import nh3
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import connection, models, transaction
from django.db.models import Max, OuterRef, Q, Subquery
from django.utils import timezone

from activities.attachables import attachable_model, record_admin_url, record_type_of
from activities.models import Activity, ActivityStatus, ActivityTemplate, Attachment, CalendarFeed, Note
from activities.selectors import FEED_PREFIX_LENGTH, calendar_token_hash
from crm.actors import Actor, actor_ensure_given, is_system, person
from crm.db.backends.hooks import on_rollback
from crm.events.publishing import records_created_publish
from crm.models import Account, Contact, Lead, NotificationKind
from crm.notifications.services import notify
from crm.scoring import lead_score_assign, lead_score_refresh, lead_scores_refresh
from crm.selectors import record_is_visible, record_visible_to
from crm.services import (
    owner_ensure_allowed,
    record_assign,
    record_delete,
    record_ensure_changeable,
    record_lock,
    record_save,
    related_ensure_visible,
    with_default_owner,
)
from sales.models import Opportunity

# The records an activity is logged on: each must be one its author sees.
LINKS = ("lead", "opportunity", "contact", "account")


def _links_ensure_visible(*, user: Actor, activity: Activity | None, data: Mapping[str, Any]) -> None:
    for name in LINKS:
        record = data.get(name)
        if record is not None and (activity is None or record.pk != getattr(activity, f"{name}_id")):
            related_ensure_visible(user=user, record=record, field=name)


@transaction.atomic
def activity_create(*, user: Actor, data: Mapping[str, Any]) -> Activity:
    """Log an activity on a lead, opportunity, contact or account; completed ones get a completion time."""
    _links_ensure_visible(user=user, activity=None, data=data)
    data = _template_defaults(data)
    return _rescore(record_save(instance=Activity(), data=with_default_owner(data, user), user=user))


@transaction.atomic
def activity_update(*, activity: Activity, user: Actor, data: Mapping[str, Any]) -> Activity:
    """Update an activity. Reopening a completed one clears its completion time unless one is given."""
    activity = record_lock(activity)
    record_ensure_changeable(user=user, record=activity)
    owner_ensure_allowed(user=user, record=activity, data=data)
    _links_ensure_visible(user=user, activity=activity, data=data)
    data = dict(data)
    reopened = (
        "status" in data
        and data["status"] != ActivityStatus.COMPLETED
        and activity.status == ActivityStatus.COMPLETED
    )
    if reopened and "completed_at" not in data:
        data["completed_at"] = None
    if "remind_at" in data and data["remind_at"] != activity.remind_at:
        activity.reminded_at = None  # a new reminder time: it fires again
    previous_lead_id, previous_opportunity_id = activity.lead_id, activity.opportunity_id
    previous_contact_id, previous_account_id = activity.contact_id, activity.account_id
    was_completed = activity.status == ActivityStatus.COMPLETED
    activity = _rescore(record_save(instance=activity, data=data, user=user))
    if activity.status == ActivityStatus.COMPLETED and not was_completed:
        _follow_up(activity=activity, user=user)
    if previous_opportunity_id and previous_opportunity_id != activity.opportunity_id:
        opportunity_last_activity_refresh(opportunity_ids=[previous_opportunity_id])
    if previous_contact_id and previous_contact_id != activity.contact_id:
        contact_last_activity_refresh(contact_ids=[previous_contact_id])
    if previous_account_id and previous_account_id != activity.account_id:
        account_last_activity_refresh(account_ids=[previous_account_id])
    if previous_lead_id and previous_lead_id != activity.lead_id:
        # The lead it left may have lost its newest activity.
        lead_last_activity_refresh(lead_ids=[previous_lead_id])
        lead_score_refresh(lead=Lead.objects.get(pk=previous_lead_id))
    return activity


@transaction.atomic
def activity_delete(*, activity: Activity, user: Actor) -> None:
    """Delete an activity; its lead loses the points the activity gave it (recent activity)."""
    record_ensure_changeable(user=user, record=activity)
    lead_id, opportunity_id = activity.lead_id, activity.opportunity_id
    contact_id, account_id = activity.contact_id, activity.account_id
    record_delete(instance=activity, user=user)
    if opportunity_id:
        opportunity_last_activity_refresh(opportunity_ids=[opportunity_id])
    if contact_id:
        contact_last_activity_refresh(contact_ids=[contact_id])
    if account_id:
        account_last_activity_refresh(account_ids=[account_id])
    if lead_id:
        lead_last_activity_refresh(lead_ids=[lead_id])
        lead = Lead.objects.filter(pk=lead_id).first()
        if lead is not None:
            lead_score_refresh(lead=lead)


def _links_ensure_visible_many(*, user: Actor, rows: Sequence[Mapping[str, Any]]) -> None:
    """``_links_ensure_visible`` for many new activities: one query per kind of linked record."""
    if is_system(user):
        return
    wanted: dict[type[models.Model], dict[int, tuple[str, models.Model]]] = {}
    for data in rows:
        for name in LINKS:
            record = data.get(name)
            if record is not None:
                wanted.setdefault(type(record), {})[record.pk] = (name, record)
    for model, records in wanted.items():
        seen = set(record_visible_to(model, user).filter(pk__in=list(records)).values_list("pk", flat=True))
        for pk, (name, record) in records.items():
            if pk not in seen:
                related_ensure_visible(user=user, record=record, field=name)  # raises its 400


@transaction.atomic
def activities_create_bulk(*, user: Actor, rows: Sequence[Mapping[str, Any]]) -> list[Activity]:
    """Log many activities at once under ``activity_create``'s rules, in a few statements whatever
    their number: each linked record one ``user`` sees and each owner one ``user`` may assign
    (checked per kind of record and per owner, not per row), every activity validated before any is
    written; then one ``INSERT`` of the activities, one of their audit versions (credited to
    ``user``), one ``activity.created`` event per activity (read together, one ``INSERT``: its
    consumers, the owner's notification among them, see each), and the leads' last activity and
    scores recomputed set-based. A row that fails validation refuses the whole batch (the error
    names its index), so a caller can fall back to ``activity_create`` row by row."""
    actor_ensure_given(user)
    if not rows:
        return []
    _links_ensure_visible_many(user=user, rows=rows)
    owners_checked: set[int | None] = set()
    activities = []
    for index, data in enumerate(rows):
        data = _template_defaults(data)
        owner = data.get("owner")
        owner_key = owner.pk if owner is not None else None
        if "owner" not in data or owner_key not in owners_checked:
            data = with_default_owner(data, user)
            owners_checked.add(owner_key)
        activity = Activity()
        record_assign(instance=activity, data=data)
        # The linked records and the owner are instances just checked: not read again one by one.
        # Unique and check constraints are the database's (one query each per row here otherwise).
        given = [name for name in (*LINKS, "owner", "template") if data.get(name) is not None]
        try:
            activity.full_clean(exclude=given, validate_unique=False, validate_constraints=False)
        except ValidationError as exc:
            raise ValidationError({f"rows[{index}]": exc.messages}) from exc
        activities.append(activity)
    created = Activity.objects.bulk_create(activities, batch_size=1000)
    if created and created[0].pk is None:  # a backend that cannot return the new ids
        raise NotImplementedError("activities_create_bulk needs a database that returns inserted ids.")
    Activity.history.bulk_history_create(
        created, default_user=person(user), default_date=timezone.now(), batch_size=1000
    )
    records_created_publish(created, user=user)
    last_activities_refresh(created)
    lead_ids = sorted({activity.lead_id for activity in created if activity.lead_id})
    if lead_ids:
        lead_scores_refresh(ids=lead_ids)
    return created


def _rescore(activity: Activity) -> Activity:
    """Recent activity counts in a lead's score: keep the lead's last activity and its score current
    (and the deal's, the contact's and the account's last activity)."""
    if activity.opportunity_id:
        opportunity_last_activity_refresh(opportunity_ids=[activity.opportunity_id])
    if activity.contact_id:
        contact_last_activity_refresh(contact_ids=[activity.contact_id])
    if activity.account_id:
        account_last_activity_refresh(account_ids=[activity.account_id])
    if activity.lead_id:
        _lead_activity_rescore(activity.lead)
    return activity


def _lead_activity_rescore(lead: Lead) -> None:
    """The lead's last activity and the score it gives, read and written together: one write of the
    row, not one for each (both columns are indexed: each write of the row writes every index of the
    leads again)."""
    newest = Activity.objects.filter(lead=lead.pk).order_by().aggregate(last=Max("created_at"))["last"]
    lead.last_activity_at = newest
    lead_score_assign(lead=lead)
    Lead.objects.filter(pk=lead.pk).update(
        last_activity_at=newest, score=lead.score, score_breakdown_id=lead.score_breakdown_id
    )


def lead_last_activity_refresh(*, lead_ids: Iterable[int] | None = None) -> int:
    """Recompute ``Lead.last_activity_at`` (when its newest activity was logged) of ``lead_ids``, or of
    every lead when None (after activities were written in bulk: the seed); returns the leads written.

    The column is derived, like the score: an UPDATE of it alone, no new version of the lead and no
    change of its ``updated_at`` (the lead's ETag). Every service that adds, moves or deletes an
    activity calls it; so does anything that writes activities around them in bulk.
    """
    return _last_activity_refresh(Lead, "lead", lead_ids)


def opportunity_last_activity_refresh(*, opportunity_ids: Iterable[int] | None = None) -> int:
    """``lead_last_activity_refresh`` for opportunities (``Opportunity.last_activity_at``, which the
    automation's "N days without activity" reads through its index)."""
    return _last_activity_refresh(Opportunity, "opportunity", opportunity_ids)


def contact_last_activity_refresh(*, contact_ids: Iterable[int] | None = None) -> int:
    """``lead_last_activity_refresh`` for contacts (``Contact.last_activity_at``)."""
    return _last_activity_refresh(Contact, "contact", contact_ids)


def account_last_activity_refresh(*, account_ids: Iterable[int] | None = None) -> int:
    """``lead_last_activity_refresh`` for accounts (``Account.last_activity_at``)."""
    return _last_activity_refresh(Account, "account", account_ids)


def last_activities_refresh(activities: Iterable[Activity]) -> None:
    """The last activity of the leads, deals, contacts and accounts of ``activities`` after they were
    added, moved or deleted: one UPDATE per kind of record they name."""
    activities = list(activities)
    lead_last_activity_refresh(lead_ids=[a.lead_id for a in activities if a.lead_id])
    opportunity_last_activity_refresh(
        opportunity_ids=[a.opportunity_id for a in activities if a.opportunity_id]
    )
    contact_last_activity_refresh(contact_ids=[a.contact_id for a in activities if a.contact_id])
    account_last_activity_refresh(account_ids=[a.account_id for a in activities if a.account_id])


# The records that carry a last activity, by the activity's link to them.
LAST_ACTIVITY_LINKS = (
    ("lead", Lead),
    ("opportunity", Opportunity),
    ("contact", Contact),
    ("account", Account),
)


def every_last_activity_refresh() -> None:
    """Every record's last activity, set-based (after activities were written around the services)."""
    for link, model in LAST_ACTIVITY_LINKS:
        _last_activity_refresh(model, link, None)


def _last_activity_refresh(model: type[models.Model], link: str, ids: Iterable[int] | None) -> int:
    if ids is not None:
        ids = sorted({pk for pk in ids if pk is not None})
        if not ids:
            return 0
        last = (
            Activity.objects.filter(**{f"{link}_id": OuterRef("pk")})
            .order_by()
            .values(f"{link}_id")
            .annotate(last=Max("created_at"))
            .values("last")
        )
        return model._default_manager.filter(pk__in=ids).update(last_activity_at=Subquery(last))
    # Every record: two set-based statements (a correlated subquery per lead of a million costs minutes).
    emptied, filled = last_activity_recount_sql(model, link)
    with connection.cursor() as cursor:
        cursor.execute(emptied)
        count = cursor.rowcount
        cursor.execute(filled)
        return count + cursor.rowcount


def last_activity_recount_sql(model: type[models.Model], link: str) -> tuple[str, str]:
    """The two statements that recompute every ``model`` record's ``last_activity_at`` from the
    activities' ``link``, to run in this order: those left without an activity emptied, then the others
    filled where they differ. Without parameters, so that the seed can run them on another connection
    (``last_activity_recount_statements``)."""
    quote = connection.ops.quote_name
    table, activity = quote(model._meta.db_table), quote(Activity._meta.db_table)
    last_activity_at = quote(model._meta.get_field("last_activity_at").column)
    pk = quote(model._meta.pk.column)
    link_id, created_at = (quote(Activity._meta.get_field(name).column) for name in (link, "created_at"))
    # The records without activities first: the two statements touch disjoint rows, and before the
    # other has filled the column, this one's anti-join probes only the records that had a last activity
    # (none in a seed, which writes the column empty and may not have the activities' indexes yet).
    return (
        f"UPDATE {table} SET {last_activity_at} = NULL WHERE {last_activity_at} IS NOT NULL "
        f"AND NOT EXISTS (SELECT 1 FROM {activity} WHERE {activity}.{link_id} = {table}.{pk})",
        f"UPDATE {table} SET {last_activity_at} = newest.last "
        f"FROM (SELECT {link_id} AS link_id, MAX({created_at}) AS last FROM {activity} "
        f"WHERE {link_id} IS NOT NULL GROUP BY {link_id}) AS newest "
        f"WHERE {table}.{pk} = newest.link_id "
        f"AND ({table}.{last_activity_at} IS NULL OR {table}.{last_activity_at} <> newest.last)",
    )


def last_activity_recount_statements(*links: str) -> list[tuple[str, str]]:
    """``every_last_activity_refresh`` of the kinds of record ``links`` names (default: all) as
    (statement, table) pairs, in order: what the seed runs after writing the activities, on one
    connection or, per table, on several (``crm.seeding.parallel``)."""
    return [
        (statement, model._meta.db_table)
        for link, model in LAST_ACTIVITY_LINKS
        if not links or link in links
        for statement in last_activity_recount_sql(model, link)
    ]


def _template_defaults(data: Mapping[str, Any]) -> dict[str, Any]:
    """An activity made from a template takes the template's type, script and duration where the
    caller gave none."""
    data = dict(data)
    template = data.get("template")
    if template is not None:
        if not data.get("subject"):
            data["subject"] = template.subject or template.name
        data.setdefault("activity_type", template.activity_type)
        if not data.get("description"):
            data["description"] = template.script
        if data.get("duration_minutes") is None:
            data["duration_minutes"] = template.default_duration_minutes
    return data


def _follow_up(*, activity: Activity, user: Actor) -> Activity | None:
    """Completing an activity whose template says so schedules its follow-up, N days later, on the same
    records and owner."""
    template = activity.template
    if template is None or template.follow_up_days is None:
        return None
    due = (activity.completed_at or timezone.now()) + datetime.timedelta(days=template.follow_up_days)
    data = {
        "subject": f"Follow up: {activity.subject}"[:200],
        "activity_type": template.follow_up_type or activity.activity_type,
        "due_date": due,
        "duration_minutes": activity.duration_minutes,
        "owner": activity.owner,
        "description": f"Follow-up of “{activity.subject}”, completed {activity.completed_at:%Y-%m-%d}.",
        **{name: getattr(activity, name) for name in LINKS},
    }
    follow_up = record_save(instance=Activity(), data=data, user=user)
    return _rescore(follow_up)


# --- files and notes on records --------------------------------------------------------------------------


def _type_allowed(mime_type: str) -> bool:
    for allowed in settings.CRM_FILE_ALLOWED_TYPES:
        allowed = allowed.strip().lower()
        if allowed == mime_type or (allowed.endswith("/*") and mime_type.startswith(allowed[:-1])):
            return True
    return False


def attachment_check(*, upload: UploadedFile) -> str:
    """The MIME type of ``upload`` (from its name), or a ValidationError on ``file``: empty, too large
    or of a type the settings refuse. Nothing is stored before every file of a request passed."""
    name = os.path.basename(upload.name or "")
    if not name or upload.size is None or upload.size == 0:
        raise ValidationError({"file": "The file is empty or has no name."})
    if upload.size > settings.CRM_FILE_MAX_BYTES:
        raise ValidationError(
            {
                "file": f"“{name}” is {upload.size:,} bytes; the largest file accepted is "
                f"{settings.CRM_FILE_MAX_BYTES:,} bytes (CRM_FILE_MAX_BYTES)."
            }
        )
    mime_type = (mimetypes.guess_type(name, strict=False)[0] or "application/octet-stream").lower()
    if not _type_allowed(mime_type):
        raise ValidationError(
            {"file": f"“{name}” is of type {mime_type}, which is not accepted (CRM_FILE_ALLOWED_TYPES)."}
        )
    return mime_type


def attachments_create(*, user: Actor, record: models.Model, uploads: list[UploadedFile]) -> list[Attachment]:
    """Keep ``uploads`` on ``record`` (one the user sees): all of them, or none when one is refused.

    Each file is checked before anything is stored; the files written to the storage are removed
    whenever their rows roll back: storing or saving failing half-way, or the caller's transaction
    rolling back after this returned (no file stays unreferenced)."""
    record_type = record_type_of(record)
    if record_type is None:
        raise ValidationError({"record_type": "Files cannot be kept on this kind of record."})
    related_ensure_visible(user=user, record=record, field="record_id")
    if not uploads:
        raise ValidationError({"file": "Choose at least one file."})
    checked = [(upload, attachment_check(upload=upload)) for upload in uploads]
    stored: list[Attachment] = []
    with transaction.atomic():
        for upload, mime_type in checked:
            attachment = Attachment(
                record_type=record_type,
                record_id=record.pk,
                name=os.path.basename(upload.name)[:255],
                size=upload.size,
                mime_type=mime_type[:100],
                uploaded_by=person(user),
            )
            attachment.file.save(attachment.name, upload, save=False)
            # The file goes if the rows do: this block failing half-way, or any transaction around
            # it (a later step of the request, a savepoint) rolling back after it returned.
            on_rollback(partial(attachment.file.storage.delete, attachment.file.name))
            stored.append(attachment)
            attachment.full_clean()
            attachment.save()
    return stored


@transaction.atomic
def attachment_delete(*, user: Actor, attachment: Attachment) -> None:
    """Remove a file: its uploader, or someone who may change its record. The stored file goes once the
    deletion commits."""
    _ensure_may_edit(user=user, item=attachment, author_id=attachment.uploaded_by_id)
    name = attachment.file.name
    attachment.delete()
    transaction.on_commit(lambda: default_storage.delete(name))


def _ensure_may_edit(*, user: Actor, item, author_id: int | None) -> None:
    if is_system(user) or (author_id is not None and author_id == user.pk):
        return
    model = attachable_model(item.record_type)
    record = model._default_manager.filter(pk=item.record_id).first()
    if record is None:
        raise PermissionDenied("Only its author may change this.")
    record_ensure_changeable(user=user, record=record)


MENTION = re.compile(r"(?<![\w@/.])@([\w.+-]{1,150})")
NOTE_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "i", "li", "ol", "p", "pre", "s", "strong", "sub", "sup", "table", "tbody", "td", "th", "thead", "tr",
    "ul",
}  # fmt: skip


def note_render(body: str) -> str:
    """Markdown to HTML, then sanitised (nh3): no script, style, event handler or javascript: link."""
    html = markdown.markdown(body, extensions=["extra", "sane_lists"], output_format="html")
    return nh3.clean(
        html,
        tags=NOTE_TAGS,
        attributes={"a": {"href", "title"}, "abbr": {"title"}, "td": {"align"}, "th": {"align"}},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )


def note_mentions(body: str) -> list:
    """The active users named ``@username`` in ``body``, in any case (a trailing full stop is
    punctuation); at most 50 names are looked up."""
    names = sorted({match.rstrip(".").lower() for match in MENTION.findall(body)} - {""})[:50]
    if not names:
        return []
    condition = Q()
    for name in names:
        condition |= Q(username__iexact=name)
    return list(get_user_model().objects.filter(condition, is_active=True).order_by("pk"))


def _notify_mentions(*, note: Note, user: Actor, record: models.Model) -> None:
    author = person(user)
    who = (author.get_full_name() or author.get_username()) if author else "The CRM"
    url = record_admin_url(note.record_type, note.record_id)
    for mentioned in note_mentions(note.body):
        if author is not None and mentioned.pk == author.pk:
            continue
        if not record_is_visible(user=mentioned, record=record):
            continue  # told nothing about a record they cannot see
        notify(
            recipient=mentioned,
            kind=NotificationKind.MENTION,
            event_id=f"note:{note.pk}",
            title=f"{who} mentioned you on {record._meta.verbose_name} “{record}”"[:255],
            body=note.body[:2000],
            url=url,
            record_type=note.record_type,
            record_id=note.record_id,
        )


@transaction.atomic
def note_create(*, user: Actor, record: models.Model, body: str) -> Note:
    """Write a note on ``record`` (one the user sees); each user @mentioned who sees the record is told."""
    record_type = record_type_of(record)
    if record_type is None:
        raise ValidationError({"record_type": "Notes cannot be kept on this kind of record."})
    related_ensure_visible(user=user, record=record, field="record_id")
    if not (body or "").strip():
        raise ValidationError({"body": "Write something."})
    note = Note(
        record_type=record_type,
        record_id=record.pk,
        body=body,
        body_html=note_render(body),
        author=person(user),
    )
    note.full_clean()
    note.save()
    _notify_mentions(note=note, user=user, record=record)
    return note


@transaction.atomic
def note_update(*, user: Actor, note: Note, body: str) -> Note:
    """Edit a note (its author, or someone who may change its record); newly mentioned users are told."""
    note = record_lock(note)
    _ensure_may_edit(user=user, item=note, author_id=note.author_id)
    if not (body or "").strip():
        raise ValidationError({"body": "Write something."})
    note.body, note.body_html = body, note_render(body)
    note.full_clean()
    note.save()
    record = attachable_model(note.record_type)._default_manager.get(pk=note.record_id)
    _notify_mentions(note=note, user=user, record=record)
    return note


@transaction.atomic
def note_delete(*, user: Actor, note: Note) -> None:
    _ensure_may_edit(user=user, item=note, author_id=note.author_id)
    note.delete()


def record_attachments_delete(*, record: models.Model) -> Callable[[], None] | None:
    """Before ``record`` is deleted: its files and notes go with it, and those of the activities the
    delete cascades to (the stored files once the delete commits)."""
    record_type = record_type_of(record)
    if record_type is None or record.pk is None:
        return None
    targets = Q(record_type=record_type, record_id=record.pk)
    cascading = [
        field.name
        for field in Activity._meta.concrete_fields
        if field.is_relation
        and field.remote_field.on_delete is models.CASCADE
        and isinstance(record, field.related_model)
    ]
    if cascading:
        linked = Q()
        for name in cascading:
            linked |= Q(**{name: record.pk})
        activity_ids = list(Activity.objects.filter(linked).values_list("pk", flat=True))
        if activity_ids:
            targets |= Q(record_type="activity", record_id__in=activity_ids)
    files = list(Attachment.objects.filter(targets).values_list("file", flat=True))
    if not files and not Note.objects.filter(targets).exists():
        return None

    def after() -> None:
        Attachment.objects.filter(targets).delete()
        Note.objects.filter(targets).delete()
        if files:
            transaction.on_commit(lambda: [default_storage.delete(name) for name in files])

    return after


# --- activity templates ------------------------------------------------------------------------------------


def _ensure_may_configure(user: Actor, action: str) -> None:
    if not is_system(user) and not user.has_perm(f"activities.{action}_activitytemplate"):
        raise PermissionDenied("You may not change activity templates.")


@transaction.atomic
def activity_template_create(*, user: Actor, data: Mapping[str, Any]) -> ActivityTemplate:
    _ensure_may_configure(user, "add")
    return record_save(instance=ActivityTemplate(), data=data, user=user, publish=False)


@transaction.atomic
def activity_template_update(
    *, user: Actor, template: ActivityTemplate, data: Mapping[str, Any]
) -> ActivityTemplate:
    _ensure_may_configure(user, "change")
    return record_save(instance=record_lock(template), data=data, user=user, publish=False)


@transaction.atomic
def activity_template_delete(*, user: Actor, template: ActivityTemplate) -> None:
    _ensure_may_configure(user, "delete")
    template.delete()  # activities made from it keep their fields; their link is cleared (SET_NULL)


# --- the personal calendar feed ----------------------------------------------------------------------------


@transaction.atomic
def calendar_feed_regenerate(*, user: Actor) -> str:
    """A new secret token for ``user``'s calendar feed, returned once; the old one stops working now.
    Only its hash and first characters are kept."""
    owner = person(user)
    if owner is None:
        raise PermissionDenied("The system has no calendar.")
    token = secrets.token_urlsafe(32)
    CalendarFeed.objects.update_or_create(
        user=owner,
        defaults={
            "token_prefix": token[:FEED_PREFIX_LENGTH],
            "token_hash": calendar_token_hash(token),
        },
    )
    return token
