"""The visibility rule: who sees and who may change which records (teams, managers, CRM Admins), and the
registry other apps add their records' rules to.
"""

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import router
from django.db.models import (
    CharField,
    Exists,
    IntegerField,
    Model,
    OuterRef,
    Q,
    QuerySet,
    Value,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast
from django.db.models.lookups import In
from django.db.models.signals import m2m_changed, post_delete, post_save

from crm.actors import Actor
from crm.models import Account, Contact, Lead, SalesTeam
from crm.models.base import owner_key_expression
from crm.prepared import prepared

# --- visibility: the one place per model that decides which records a user sees ------------------


# Leads, opportunities and activities: a rep sees what they own and what nobody owns; a manager also
# sees what the members of the (active) teams they manage own; a CRM Admin or a superuser sees all.
# Accounts and contacts are shared customer data: every signed-in user reads them, but only the owner's
# team (the owner, their team-mates and their teams' managers) or a CRM Admin may change them.

CRM_ADMIN_GROUP = "CRM Admin"


def _crm_admin_memberships(user_pk) -> QuerySet:
    return get_user_model().groups.through.objects.filter(user=user_pk, group__name=CRM_ADMIN_GROUP)


def _crm_admin_membership(user: Actor) -> Exists:
    return Exists(_crm_admin_memberships(user.pk))


_SEES_EVERYTHING = "_crm_sees_everything"


def user_sees_everything(user: Actor) -> bool:
    """A superuser or a CRM Admin. The group membership is read once per user object (a request's
    user: an admin page asked it a dozen times), as Django keeps a user's permissions; changing the
    user's own groups (``user.groups.add``) forgets it."""
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    known = getattr(user, _SEES_EVERYTHING, None)
    if known is None:
        user_access_read(user)
        known = getattr(user, _SEES_EVERYTHING)
    return known


def _forget_sees_everything(sender, instance, action, reverse, **kwargs) -> None:
    if action.startswith("post_"):
        # user.groups.add(...): that user; group.user_set.add(...): the users are not at hand, and
        # like Django's permission cache, a fresh user object reads it again.
        vars(instance).pop(_SEES_EVERYTHING, None)


m2m_changed.connect(
    _forget_sees_everything,
    sender=get_user_model().groups.through,
    dispatch_uid="crm_forget_sees_everything",
)


def _teams() -> QuerySet[SalesTeam]:
    return SalesTeam.objects.filter(is_active=True)


def sales_team_visible_to(user: Actor) -> QuerySet[SalesTeam]:
    """Every team for a CRM Admin or a superuser; else the teams ``user`` manages or belongs to."""
    if user_sees_everything(user):
        return SalesTeam.objects.all()
    if not user.is_authenticated or not user.is_active:
        return SalesTeam.objects.none()
    # A subquery, not a join: a join on members would also narrow what the caller counts of them.
    mine = SalesTeam.objects.filter(Q(manager=user) | Q(members=user)).values("pk")
    return SalesTeam.objects.filter(pk__in=mine)


def user_managed_ids(user: Actor) -> QuerySet:
    """The ids of ``user`` and of the members of the active teams ``user`` manages (a subquery)."""
    return _managed_users(user.pk).values("pk")


def _managed_users(user_pk) -> QuerySet:
    managed_teams = _teams().filter(manager=user_pk)
    return get_user_model().objects.filter(Q(pk=user_pk) | Q(sales_teams__in=managed_teams))


def user_team_ids(user: Actor) -> QuerySet:
    """The ids of ``user``'s team: ``user``, the members and managers of every active team they are in
    or manage (a subquery)."""
    return _team_users(user.pk)


def _team_users(user_pk) -> QuerySet:
    teams = _teams().filter(Q(manager=user_pk) | Q(members=user_pk)).values("pk")
    return (
        get_user_model()
        .objects.filter(Q(pk=user_pk) | Q(sales_teams__in=teams) | Q(managed_teams__in=teams))
        .values("pk")
    )


_MANAGED_IDS = "_crm_managed_ids"
# Bumped by every change of a team in this process (_forget_managed_ids): a list read before is read
# again.
_teams_changed = itertools.count()
_teams_version = 0


def user_managed_id_list(user: Actor) -> list[int]:
    """``user_managed_ids`` read now: the ids of ``user`` and of the members of the active teams
    ``user`` manages. A list's visibility reads it on most requests: compiled once per database and
    thread (crm.prepared), and read once per user object (a request's user: its list, its duplicate
    check and its answer each asked) until a team changes, as the CRM Admin membership is
    (``user_sees_everything``)."""
    known = getattr(user, _MANAGED_IDS, None)
    if known is None or known[0] != _teams_version:
        known = user_access_read(user)[_MANAGED_IDS]
    return list(known[1])


def _forget_managed_ids(**kwargs) -> None:
    global _teams_version
    _teams_version = next(_teams_changed) + 1


for _signal in (post_save, post_delete):
    _signal.connect(_forget_managed_ids, sender=SalesTeam, dispatch_uid=f"crm_forget_managed_ids_{_signal}")
m2m_changed.connect(
    _forget_managed_ids, sender=SalesTeam.members.through, dispatch_uid="crm_forget_managed_ids_members"
)


# --- what most requests ask of their user, read in one statement ---------------------------------

_TEXT, _NUMBER = CharField(), IntegerField()


def _access_query(user_pk) -> QuerySet:
    """A user's own permissions and their groups' (as Django's ModelBackend reads them), their CRM
    Admin membership and the ids ``user_managed_ids`` gives, as one UNION ALL of (kind, app label,
    codename, id) rows."""

    def typed_nulls(**names):
        return {name: Cast(Value(None), kind) for name, kind in names.items()}

    def permissions(source: str, **lookup) -> QuerySet:
        return (
            Permission.objects.filter(**lookup)
            .annotate(_kind=Value(source, output_field=_TEXT), **typed_nulls(_id=_NUMBER))
            .values_list("_kind", "content_type__app_label", "codename", "_id")
            .order_by()
        )

    crm_admin = (
        _crm_admin_memberships(user_pk)
        .annotate(
            _kind=Value("crm-admin", output_field=_TEXT), **typed_nulls(_app=_TEXT, _code=_TEXT, _id=_NUMBER)
        )
        .values_list("_kind", "_app", "_code", "_id")
        .order_by()
    )
    managed = (
        _managed_users(user_pk)
        .annotate(_kind=Value("managed", output_field=_TEXT), **typed_nulls(_app=_TEXT, _code=_TEXT))
        .values_list("_kind", "_app", "_code", "pk")
        .order_by()
    )
    return permissions("user", user=user_pk).union(
        permissions("group", group__user=user_pk), crm_admin, managed, all=True
    )


def user_access_read(user: Actor) -> dict[str, Any]:
    """Read now, in one statement, what nearly every request asks of its user: their model permissions
    (unless a superuser's, which are all of them), whether they are a CRM Admin
    (``user_sees_everything``) and the ids of the users they manage (``user_managed_id_list``); and
    keep each on the user object as its own reader does, where that reader finds it. Three statements
    a request were one. A permission cache already on the object is kept, as Django keeps it.

    The SQL is compiled once per database and thread (crm.prepared). Returns what was kept."""
    version = _teams_version  # a team changed while this reads is read again next time
    db = router.db_for_read(get_user_model())
    query = prepared(("user-access", db), lambda key: _access_query(key).using(db))
    rows = query.rows(user.pk) if query is not None else list(_access_query(user.pk).using(db))
    permissions: dict[str, set[str]] = {"user": set(), "group": set()}
    crm_admin, managed = False, {}
    for kind, app_label, codename, pk in rows:
        if kind == "managed":
            managed[pk] = None
        elif kind == "crm-admin":
            crm_admin = True
        else:
            permissions[kind].add(f"{app_label}.{codename}")
    kept = {_SEES_EVERYTHING: crm_admin, _MANAGED_IDS: (version, tuple(managed))}
    if not user.is_superuser:
        for source, found in permissions.items():
            kept[f"_{source}_perm_cache"] = getattr(user, f"_{source}_perm_cache", found)
        kept["_perm_cache"] = getattr(
            user, "_perm_cache", kept["_user_perm_cache"] | kept["_group_perm_cache"]
        )
    for name, value in kept.items():
        if name != _MANAGED_IDS or user.pk is not None:
            setattr(user, name, value)  # on the user itself through request.user's lazy proxy
    return kept


def user_manages_a_team(user: Actor) -> bool:
    return user.is_authenticated and _teams().filter(manager=user).exists()


# Other apps may widen who *sees* owned records (sales: the members of a territory see its accounts'
# deals and leads when CRM_TERRITORY_VISIBILITY is on): (model, user) -> a Q, or None to add nothing.
# A grant never widens who may change them (``owned_records_editable_by``).
VisibilityGrant = Any
_VISIBILITY_GRANTS: list[VisibilityGrant] = []


def register_visibility_grant(grant: VisibilityGrant) -> None:
    if grant not in _VISIBILITY_GRANTS:
        _VISIBILITY_GRANTS.append(grant)


def _owner_rule(user: Actor) -> Q:
    # One SQL condition, not a query per request to learn the user's group first.
    return Q(owner__isnull=True) | Q(owner__in=user_managed_ids(user)) | Q(_crm_admin_membership(user))


def owned_records_editable_by(queryset: QuerySet, user: Actor) -> QuerySet:
    """``queryset`` narrowed to the records ``user`` may change under the owner rule above."""
    if not user.is_authenticated or not user.is_active:
        return queryset.none()
    if user.is_superuser:
        return queryset
    return _narrowed(queryset, _owner_listed(user))


def owned_records_visible_to(queryset: QuerySet, user: Actor) -> QuerySet:
    """``queryset`` narrowed to the records ``user`` may see: the owner rule, widened by the grants.

    Without a grant, it is written with the CRM Admin membership read first (once per user object, by a
    statement compiled once): no condition at all for a CRM Admin, else no owner or an owner of the
    subquery of the owners ``user`` sees, its SQL compiled once (``_owner_listed``). Built with the ORM,
    that subquery and an ``EXISTS`` on the membership were built and compiled again by every list, board,
    page and check that read records (a tenth of a list request's Python)."""
    if not user.is_authenticated or not user.is_active:
        return queryset.none()
    if user.is_superuser:
        return queryset
    if not any(grant(queryset.model, user) is not None for grant in _VISIBILITY_GRANTS):
        return _narrowed(queryset, _owner_listed(user))
    condition = _owner_rule(user)
    for grant in _VISIBILITY_GRANTS:
        extra = grant(queryset.model, user)
        if extra is not None:
            condition |= extra
    return queryset.filter(condition)


def _owner_listed(user: Actor) -> Q:
    """The owner rule with the CRM Admin membership read now (once per user object): ``Q()`` for a CRM
    Admin, else no owner or one of the owners ``user`` sees, by a subquery whose SQL is compiled once
    (``_managed_ids_sql``).

    Not the owners as a list of ids: with a list, a page narrowed to one owner (``owner=`` the rep)
    repeats the condition on the same column, which PostgreSQL takes as two independent ones and
    underestimates forty times over; it then read and sorted a rep's 13,000 open leads for a page of
    25 where an index on the owner in the page's order reads 25."""
    if user_sees_everything(user):
        return Q()
    return Q(owner__isnull=True) | Q(owner__in=_managed_ids_sql(user.pk))


def _managed_ids_sql(user_pk: int) -> RawSQL | QuerySet:
    """``user_managed_ids`` as SQL compiled once per database and thread (crm.prepared)."""
    return _user_subquery("user-managed-ids", lambda key: _managed_users(key).values("pk"), user_pk)


def _team_ids_sql(user_pk: int) -> RawSQL | QuerySet:
    """``user_team_ids`` as SQL compiled once per database and thread (crm.prepared)."""
    return _user_subquery("user-team-ids", _team_users, user_pk)


def _user_subquery(name: str, build: Callable[[Any], QuerySet], user_pk: int) -> RawSQL | QuerySet:
    """``build(user_pk)`` (the ids of some users, a subquery) as its SQL compiled once per database and
    thread and given ``user_pk``; the queryset itself where it cannot be prepared."""
    db = router.db_for_read(get_user_model())
    query = prepared((name, "subquery", db), lambda key: build(key).using(db))
    if query is None:
        return build(user_pk)
    params = list(query.params)
    for position in query.positions:
        params[position] = user_pk
    return RawSQL(query.sql, params)


def _narrowed(queryset: QuerySet, condition: Q) -> QuerySet:
    return queryset.filter(condition) if condition else queryset


def owned_records_owned_by(queryset: QuerySet, user: Actor) -> QuerySet:
    """The records of ``queryset`` that ``user`` owns. Each is one ``owned_records_visible_to`` shows
    them (the owner rule lets everyone see their own records, and a grant only widens it), read without
    the rule's subqueries: a page listing only the user's own records ("my next actions") compiles and
    runs less for the same rows. Nothing for an inactive user, as there."""
    if not user.is_authenticated or not user.is_active:
        return queryset.none()
    return queryset.filter(owner=user.pk)


def owned_records_visible_listed(model: type[Model], user: Actor) -> Q | None:
    """The rule of ``owned_records_visible_to`` with the owners ``user`` sees read now (one small query)
    and written into it as a list: ``Q()`` for whoever sees every record, else no owner or one of
    those. Where the rule is repeated (a correlated subquery per record) it compiles and runs faster,
    and an index on the owner can answer it. None where a grant widens the rule: use
    ``owned_records_visible_to`` then."""
    return _listed(model, user, lambda owners: Q(owner__isnull=True) | Q(owner__in=owners))


def owned_records_visible_listed_by_key(model: type[Model], user: Actor) -> Q | None:
    """``owned_records_visible_listed`` as one condition on the owner key (``owner_key_expression``:
    ``COALESCE(owner_id, 0) IN (0, ...)``), for a kind with an index on that key: the leads'
    ``crm_lead_owner_search``, which also carries the leads' search text (crm.search_indexes), so that
    a rep's search is read and counted from that index alone, one ``LIKE`` a row, or through the
    trigram index where the planner finds the term rare enough (crm.search_indexes.narrow_to_matches)."""
    return _listed(model, user, lambda owners: Q(In(owner_key_expression(), [0, *owners])))


def _listed(model: type[Model], user: Actor, rule: Callable[[list[int]], Q]) -> Q | None:
    """Nothing for an inactive user, ``Q()`` for whoever sees every record, None where a grant widens
    the rule, else ``rule`` of the owners ``user`` sees, read now."""
    if not user.is_authenticated or not user.is_active:
        return Q(pk__in=[])
    if user_sees_everything(user):
        return Q()
    if any(grant(model, user) is not None for grant in _VISIBILITY_GRANTS):
        return None
    return rule(user_managed_id_list(user))


def owned_records_visible_owners(model: type[Model], user: Actor) -> Q | None:
    """The rule of ``owned_records_visible_to`` as a condition on an ``owner_id`` column where 0 means
    no owner, for figures kept per owner (the rollups): a rep's figures sum the owners they may see.

    None when the rule is not a matter of owners for ``user`` (a grant widens it, such as a territory's):
    the caller then counts the records themselves.
    """
    if not user.is_authenticated or not user.is_active:
        return Q(pk__in=[])
    if user.is_superuser:
        return Q()
    if any(grant(model, user) is not None for grant in _VISIBILITY_GRANTS):
        return None
    # As _owner_listed: the CRM Admin membership read first, the owners' subquery compiled once.
    if user_sees_everything(user):
        return Q()
    return Q(owner_id=0) | Q(owner_id__in=_managed_ids_sql(user.pk))


def owned_records_visible_owners_listed(
    model: type[Model], user: Actor, column: str = "owner_id"
) -> Q | None:
    """``owned_records_visible_owners`` with the owners ``user`` sees read now and written into the
    condition as a list (``owner_id IN (0, ...)``; ``column``: another column holding a ``model``
    record's owner): an index on the owner then answers it, where the one-condition form (an OR with the
    CRM Admin membership) has every row read. Costs a small query (and the membership's, once per user
    object); for a rollup of many rows (the deals' by close month: 110,000 at 5M leads), not for one of
    a few hundred. None as there."""
    return _listed(model, user, lambda owners: Q(**{f"{column}__in": [0, *owners]}))


def shared_records_editable_by(queryset: QuerySet, user: Actor) -> QuerySet:
    """``queryset`` (accounts, contacts) narrowed to the records ``user``'s team may change."""
    if not user.is_authenticated or not user.is_active:
        return queryset.none()
    if user.is_superuser:
        return queryset
    return _narrowed(queryset, shared_records_editable_condition(user))


def shared_records_editable_condition(user: Actor) -> Q:
    """The rule of ``shared_records_editable_by`` as a condition on the record's own columns, for a
    value shown only where it holds (``Case(When(...))``). Written as ``pk IN (the editable records)``
    instead, PostgreSQL hashes every editable record of the table before the first row: 30 ms per
    annotation at 100,000 accounts. Nothing for an inactive user, ``Q()`` for a superuser or a CRM
    Admin (the membership read first, as ``_owner_listed`` does; the team's subquery compiled once)."""
    if not user.is_authenticated or not user.is_active:
        return Q(pk__in=[])
    if user_sees_everything(user):
        return Q()
    return Q(owner__isnull=True) | Q(owner__in=_team_ids_sql(user.pk))


def owner_assignable_by(user: Actor) -> QuerySet:
    """The users ``user`` may make the owner of a record: anyone for a CRM Admin; else those whose
    records ``user`` sees (themselves, and for a manager their teams' members), so a record never
    leaves the sight of the person who assigns it."""
    UserModel = get_user_model()
    if user_sees_everything(user):
        return UserModel.objects.all()
    return UserModel.objects.filter(pk__in=user_managed_ids(user))


def lead_visible_to(user: Actor) -> QuerySet[Lead]:
    return owned_records_visible_to(Lead.objects.all(), user)


def lead_editable_by(user: Actor) -> QuerySet[Lead]:
    return owned_records_editable_by(Lead.objects.all(), user)


def account_visible_to(user: Actor) -> QuerySet[Account]:
    return Account.objects.all() if user.is_authenticated and user.is_active else Account.objects.none()


def account_editable_by(user: Actor) -> QuerySet[Account]:
    return shared_records_editable_by(Account.objects.all(), user)


def contact_visible_to(user: Actor) -> QuerySet[Contact]:
    return Contact.objects.all() if user.is_authenticated and user.is_active else Contact.objects.none()


def contact_editable_by(user: Actor) -> QuerySet[Contact]:
    return shared_records_editable_by(Contact.objects.all(), user)


# --- one rule per kind of record, for code that handles records of any kind -----------------------

# Merges, conversions, relation fields, exports and aggregates handle records of several kinds,
# some owned by apps crm does not import: each app registers its models' rules here (sales and
# activities from their selectors modules), and every check reads them through the functions below.
# A model nobody registers (pipelines, stages, tags) is seen by every signed-in user; changing it is
# a matter of model permissions only.


@dataclass(frozen=True)
class RecordAccess:
    visible_to: Any  # (user) -> QuerySet of the records ``user`` sees
    editable_by: Any  # (user) -> QuerySet of the records ``user`` may change
    shared: bool  # seen by every signed-in user (accounts, contacts)
    # (model, user) -> the rule of ``visible_to`` with the owners read now and listed (a Q an index on
    # the owner answers): owned_records_visible_listed, for the kinds whose rule is the owner rule
    listed: Any = None
    # (model, user) -> the same as one condition on the owner key, for a kind with an index on it that
    # carries what a search matches: owned_records_visible_listed_by_key
    listed_by_key: Any = None


_RECORD_ACCESS: dict[type[Model], RecordAccess] = {}


def register_record_access(
    model: type[Model],
    *,
    visible_to,
    editable_by=None,
    shared: bool = False,
    listed=None,
    listed_by_key=None,
) -> None:
    """Declare who sees (``visible_to(user)``) and who changes (``editable_by(user)``, by default the
    same) the records of ``model``; ``listed(model, user)``: the same rule as a Q with what it depends
    on read now (``owned_records_visible_listed``), where the kind has one; ``listed_by_key``: that
    rule on the owner key (``owned_records_visible_listed_by_key``), where an index serves it."""
    _RECORD_ACCESS[model] = RecordAccess(visible_to, editable_by or visible_to, shared, listed, listed_by_key)


def _access(model: type[Model]) -> RecordAccess | None:
    return _RECORD_ACCESS.get(model._meta.concrete_model)


def record_visible_to(model: type[Model], user: Actor) -> QuerySet:
    access = _access(model)
    if access is None:
        manager = model._default_manager
        return manager.all() if user.is_authenticated and user.is_active else manager.none()
    return access.visible_to(user)


def record_visible_listed(model: type[Model], user: Actor) -> Q | None:
    """The rule of ``record_visible_to`` as a condition with the owners ``user`` sees read now and
    listed, for the kinds whose rule is the owner rule (``Q()`` for whoever sees every record); None
    for any other kind, or where a grant widens the rule. Added to a search's read of its matching ids,
    it lets PostgreSQL combine the owner index with the trigram indexes: a rep who sees one lead in
    fifty otherwise has every match of the term, everyone's, read and then dropped."""
    access = _access(model)
    if access is None or access.listed is None:
        return None
    return access.listed(model, user)


def record_visible_keyed(model: type[Model], user: Actor) -> Q | None:
    """The rule of ``record_visible_listed`` on the owner key, for the kinds that register it (the
    leads, whose ``crm_lead_owner_search`` carries their search text); None for the other kinds, for
    whoever sees every record (nothing to narrow) and where a grant widens the rule. A search of the
    leads (the API list, the admin changelist, the global search) gives its reader's rule in this form
    too, and the planner reads the reader's rows on it or the term's trigram matches, whichever costs
    less (crm.search_indexes.narrow_to_matches)."""
    access = _access(model)
    if access is None or access.listed_by_key is None:
        return None
    keyed = access.listed_by_key(model, user)
    return keyed if keyed else None


def record_editable_by(model: type[Model], user: Actor) -> QuerySet:
    access = _access(model)
    return record_visible_to(model, user) if access is None else access.editable_by(user)


def record_visibility_is_restricted(model: type[Model], user: Actor) -> bool:
    """Whether some records of ``model`` may be hidden from ``user`` (so what names them must check)."""
    access = _access(model)
    return access is not None and not access.shared and not user_sees_everything(user)


# What a page, list or export shows in place of a related record its reader cannot see.
HIDDEN_RECORD = "a record you cannot see"


def related_seen_annotations(model: type[Model], user: Actor, fields: tuple[str, ...]) -> dict[str, Any]:
    """``<field>_seen`` annotations: whether ``user`` sees the record each relation in ``fields``
    points at, for a page listing ``model`` rows that would otherwise name them (only the relations
    whose records may be hidden from ``user`` get one)."""
    annotations = {}
    for name in fields:
        related = model._meta.get_field(name).related_model
        if record_visibility_is_restricted(related, user):
            visible = record_visible_to(related, user).filter(pk=OuterRef(f"{name}_id"))
            annotations[f"{name}_seen"] = Exists(visible)
    return annotations


def related_shown(record: Model, name: str) -> Model | str | None:
    """``record``'s related ``name`` as a page may show it: itself, HIDDEN_RECORD, or None when unset
    (reads the ``<name>_seen`` annotation of related_seen_annotations when present)."""
    if getattr(record, f"{name}_id") is None:
        return None
    return getattr(record, name) if getattr(record, f"{name}_seen", True) else HIDDEN_RECORD


def record_is_visible(*, user: Actor, record: Model) -> bool:
    return record_visible_to(type(record), user).filter(pk=record.pk).exists()


def same_for_every_reader(selector: Callable) -> Callable:
    """Mark a list selector (``(*, user, filters=None) -> QuerySet``) whose columns are the same for
    every user who sees a record: the user narrows its rows and nothing else (no count of what the
    user sees, no value shown only to some). A record a service just wrote may then be represented for
    any of those users as it is for its events (crm.api.viewsets.represented_for); tests/api/
    test_write_answers.py compares the columns for a rep and for the system."""
    selector.same_for_every_reader = True
    return selector


def record_visible_as_held(*, user: Actor, record: Model) -> bool | None:
    """Whether ``user`` sees ``record``, answered from the record as held (its owner) without reading
    it again: for a kind seen by every signed-in user or whose rule is the owner rule
    (``owned_records_visible_listed``: no owner, or an owner ``user`` sees; all for a CRM Admin). None
    where the rule asks more than that (a grant widens it, another kind's rule): ask the database."""
    access = _access(type(record))
    if access is None:
        return None
    if not user.is_authenticated or not user.is_active:
        return False
    if access.shared:
        return True
    if access.listed is not owned_records_visible_listed:
        return None
    # As _listed decides it for the listed rule.
    if user_sees_everything(user):
        return True
    if any(grant(type(record), user) is not None for grant in _VISIBILITY_GRANTS):
        return None
    return record.owner_id is None or record.owner_id in user_managed_id_list(user)


def record_is_changeable(*, user: Actor, record: Model) -> bool:
    return record_editable_by(type(record), user).filter(pk=record.pk).exists()


register_record_access(
    Lead,
    visible_to=lead_visible_to,
    editable_by=lead_editable_by,
    listed=owned_records_visible_listed,
    listed_by_key=owned_records_visible_listed_by_key,
)
register_record_access(Account, visible_to=account_visible_to, editable_by=account_editable_by, shared=True)
register_record_access(Contact, visible_to=contact_visible_to, editable_by=contact_editable_by, shared=True)
