"""Explainable lead scores: the points each active ScoringRule gives a lead, summed and capped at 100.

``lead_score`` is pure (a lead, the rules, when its last activity was logged) and returns the score
with its breakdown, one line per rule that gave points. ``lead_score_refresh`` stores them on one
lead (the services call it whenever a lead or one of its activities changes; the activity services keep
``Lead.last_activity_at`` current first);
``lead_scores_refresh`` does it for many leads in bulk (imports, the recompute command). Leads that
are not open have no score.
"""

import bisect
import datetime
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal, InvalidOperation
from types import SimpleNamespace

from django.db import connection
from django.db.models import QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from crm.models import Lead, LeadStatus, ScoreBreakdown, ScoringCriterion, ScoringRule

MAX_SCORE = 100
# get_criterion_display() flattens the choices on every call; scoring a bulk import calls it ~7 times
# per lead.
CRITERION_LABELS = dict(ScoringCriterion.choices)
BATCH_SIZE = 1000
LEAD_FIELDS = {field.attname for field in Lead._meta.concrete_fields}


def active_rules() -> list[ScoringRule]:
    return list(ScoringRule.objects.filter(is_active=True).order_by("criterion", "value", "id"))


def _number(value: str) -> Decimal | None:
    try:
        return Decimal(value)
    except (InvalidOperation, TypeError):
        return None


def lead_score(
    lead: Lead, rules: list[ScoringRule], *, last_activity_at: datetime.datetime | None, now=None
) -> tuple[int | None, list[dict]]:
    """(score, breakdown) of ``lead``; (None, []) for a lead that is not open."""
    if lead.status != LeadStatus.OPEN:
        return None, []
    now = now or timezone.now()
    lines = []
    best: dict[str, tuple[Decimal, ScoringRule]] = {}
    for rule in rules:
        criterion = rule.criterion
        if criterion in (ScoringCriterion.RATING, ScoringCriterion.PRIORITY, ScoringCriterion.SOURCE):
            if getattr(lead, criterion) == rule.value:
                lines.append(rule)
        elif criterion == ScoringCriterion.COMPLETENESS:
            if str(getattr(lead, rule.value, "") or "").strip():
                lines.append(rule)
        elif criterion == ScoringCriterion.RECENT_ACTIVITY:
            # Only the nearest window the last activity falls in counts.
            days = _number(rule.value)
            recent = (
                days is not None
                and last_activity_at is not None
                and now - last_activity_at <= datetime.timedelta(days=float(days))
            )
            if recent and (criterion not in best or days < best[criterion][0]):
                best[criterion] = (days, rule)
        elif criterion == ScoringCriterion.EXPECTED_REVENUE:
            # Only the highest amount the expected revenue reaches counts.
            amount = _number(rule.value)
            reached = (
                amount is not None and lead.expected_revenue is not None and lead.expected_revenue >= amount
            )
            if reached and (criterion not in best or amount > best[criterion][0]):
                best[criterion] = (amount, rule)
    lines += [rule for _, rule in best.values()]
    breakdown = [
        {
            "criterion": r.criterion,
            "value": r.value,
            "points": r.points,
            "label": CRITERION_LABELS[r.criterion],
        }
        for r in sorted(lines, key=lambda r: (-r.points, r.criterion, r.value))
    ]
    return min(MAX_SCORE, sum(r.points for r in lines)), breakdown


def stored_breakdown(breakdown: list[dict]) -> tuple[tuple, ...] | None:
    """A breakdown as ScoreBreakdown stores it: (criterion, value, points) a line, the label added when
    shown; None when no rule gave points. A tuple, so it can key the ids of stored breakdowns."""
    return tuple((line["criterion"], line["value"], line["points"]) for line in breakdown) or None


def breakdown_digest(lines) -> str:
    return hashlib.sha256(json.dumps(lines, separators=(",", ":")).encode()).hexdigest()


class Breakdowns:
    """Ids of stored score breakdowns, by their lines (from stored_breakdown): found or created in
    bulk, a few queries for any number of leads. Safe against another transaction storing the same
    breakdown at the same time (the digest is unique; the insert skips a row that exists)."""

    def __init__(self):
        self.ids: dict[tuple | None, int | None] = {None: None}

    def missing(self, breakdowns: Iterable[tuple | None]) -> set[tuple]:
        return {lines for lines in breakdowns if lines not in self.ids}

    def store(self, breakdowns: Iterable[tuple | None]) -> dict[tuple | None, int | None]:
        """Make sure each of ``breakdowns`` is stored; returns the ids of all breakdowns seen so far."""
        missing = self.missing(breakdowns)
        if missing:
            by_digest = {breakdown_digest(lines): lines for lines in missing}
            found = dict(ScoreBreakdown.objects.filter(digest__in=by_digest).values_list("digest", "id"))
            new = [
                ScoreBreakdown(lines=[list(line) for line in lines], digest=digest)
                for digest, lines in by_digest.items()
                if digest not in found
            ]
            if new:
                ScoreBreakdown.objects.bulk_create(new, ignore_conflicts=True)
                created = ScoreBreakdown.objects.filter(digest__in=[b.digest for b in new])
                found.update(created.values_list("digest", "id"))
            self.ids.update((lines, found[digest]) for digest, lines in by_digest.items())
        return self.ids


def shown_breakdown(breakdown: ScoreBreakdown | None) -> list[dict]:
    """A lead's score breakdown as the API and the admin show it: criterion, value, points, label."""
    return shown_lines(breakdown.lines if breakdown is not None else None)


def shown_lines(stored: list | None) -> list[dict]:
    """``shown_breakdown`` of a breakdown's stored ``lines`` (None: the lead has no breakdown)."""
    lines = []
    for line in stored or []:
        if isinstance(line, dict):  # written before breakdowns were stored compact
            lines.append(line)
            continue
        criterion, value, points = line
        label = CRITERION_LABELS.get(criterion, criterion)
        lines.append({"criterion": criterion, "value": value, "points": points, "label": label})
    return lines


def new_lead_scorer(rules: list[ScoringRule], *, now=None) -> Callable[..., tuple[int | None, tuple | None]]:
    """A function giving (score, breakdown lines) of a lead from its field values (attname -> value; fields
    it lacks take the model's defaults) and when its last activity was logged (None: never, as for a
    lead that is not stored yet).

    Bulk imports score every row they write with it: a lead's score depends only on a few of its
    fields (status, rating, priority, source, which completeness fields are filled, which revenue
    threshold it reaches) and on which activity window its last activity falls in, so the result is
    computed once per distinct combination by ``lead_score`` itself and reused, instead of running
    every rule for each of 100,000 rows.
    """
    defaults = {
        field.attname: field.get_default() if field.has_default() else (None if field.null else "")
        for field in Lead._meta.concrete_fields
    }
    filled = sorted({r.value for r in rules if r.criterion == ScoringCriterion.COMPLETENESS})
    filled = [name for name in filled if name in defaults]
    thresholds = sorted(
        {
            amount
            for r in rules
            if r.criterion == ScoringCriterion.EXPECTED_REVENUE
            if (amount := _number(r.value)) is not None
        }
    )
    # The nearest window an activity falls in decides its points (see lead_score).
    windows = sorted(
        {
            datetime.timedelta(days=float(days))
            for r in rules
            if r.criterion == ScoringCriterion.RECENT_ACTIVITY
            if (days := _number(r.value)) is not None
        }
    )
    now = now or timezone.now()
    cache: dict[tuple, tuple[int | None, tuple | None]] = {}

    def score(values: Mapping, last_activity_at: datetime.datetime | None = None):
        def get(name):
            return values[name] if name in values else defaults[name]

        revenue = get("expected_revenue")
        key = (
            get("status"),
            get("rating"),
            get("priority"),
            get("source"),
            tuple(bool(str(get(name) or "").strip()) for name in filled),
            -1 if revenue is None else bisect.bisect_right(thresholds, revenue),
            -1 if last_activity_at is None else bisect.bisect_left(windows, now - last_activity_at),
        )
        found = cache.get(key)
        if found is None:
            lead = SimpleNamespace(**{**defaults, **values})
            score, breakdown = lead_score(lead, rules, last_activity_at=last_activity_at, now=now)
            found = cache[key] = (score, stored_breakdown(breakdown))
        return found

    score.fields = frozenset(  # the fields it reads
        {"status", "rating", "priority", "source", "expected_revenue", *filled}
    )
    return score


def last_activities(lead_ids: list[int]) -> dict[int, datetime.datetime]:
    """When the last activity of each of ``lead_ids`` was logged (leads without one are left out)."""
    found = {}
    if connection.vendor == "postgresql":
        ids = RawSQL("SELECT unnest(%s::bigint[])", (list(lead_ids),))
        chunks = [ids] if lead_ids else []
    else:
        chunks = [lead_ids[i : i + BATCH_SIZE] for i in range(0, len(lead_ids), BATCH_SIZE)]
    for chunk in chunks:
        rows = Lead.objects.filter(pk__in=chunk, last_activity_at__isnull=False).values_list(
            "pk", "last_activity_at"
        )
        found.update(rows)
    return found


def lead_score_assign(*, lead: Lead, rules: list[ScoringRule] | None = None) -> Lead:
    """Set one lead's score and breakdown on ``lead`` (the breakdown stored if new), for the save about
    to write the lead to write them too."""
    score, breakdown = lead_score(
        lead, active_rules() if rules is None else rules, last_activity_at=lead.last_activity_at
    )
    lead.score = score
    lead.score_breakdown_id = Breakdowns().store([lines := stored_breakdown(breakdown)])[lines]
    return lead


def lead_score_refresh(*, lead: Lead, rules: list[ScoringRule] | None = None) -> Lead:
    """Recompute and store one lead's score (an UPDATE of two columns, not a save), for a change that
    does not save the lead (an activity logged on it)."""
    lead_score_assign(lead=lead, rules=rules)
    Lead.objects.filter(pk=lead.pk).update(score=lead.score, score_breakdown_id=lead.score_breakdown_id)
    return lead


def lead_scores_refresh(*, queryset: QuerySet[Lead] | None = None, ids: list[int] | None = None) -> int:
    """Recompute the scores of many leads in batches; returns how many were written."""
    if queryset is None:
        queryset = Lead.objects.all()
    if ids is not None:
        if connection.vendor == "postgresql":
            # One array parameter: an IN list of 10,000 placeholders costs seconds to build and parse.
            queryset = queryset.filter(pk__in=RawSQL("SELECT unnest(%s::bigint[])", (list(ids),)))
        else:
            queryset = queryset.filter(pk__in=ids)
    rules, now, written, batch = active_rules(), timezone.now(), 0, []
    breakdowns = Breakdowns()
    # Only the columns the rules read: a bulk rescore must not build whole leads.
    fields = {"status", "rating", "priority", "source", "expected_revenue", "last_activity_at"}
    fields |= {
        r.value for r in rules if r.criterion == ScoringCriterion.COMPLETENESS and r.value in LEAD_FIELDS
    }
    leads = queryset.only(*fields).order_by("pk")
    for lead in leads.iterator(chunk_size=BATCH_SIZE):
        score, breakdown = lead_score(lead, rules, last_activity_at=lead.last_activity_at, now=now)
        batch.append((lead.pk, score, stored_breakdown(breakdown)))
        if len(batch) >= SCORE_WRITE_BATCH:
            written += _write_scores(batch, breakdowns)
            batch = []
    if batch:
        written += _write_scores(batch, breakdowns)
    return written


SCORE_WRITE_BATCH = 20_000


def _write_scores(rows: list[tuple[int, int | None, tuple | None]], breakdowns: Breakdowns) -> int:
    """Store (id, score, breakdown lines) rows with set-based SQL: Django's bulk_update builds a CASE
    per row and took most of an import's time. PostgreSQL: COPY into a temporary table, then one
    UPDATE ... FROM; other databases: one executemany of a plain UPDATE."""
    ids = breakdowns.store(lines for _, _, lines in rows)
    rows = [(pk, score, ids[lines]) for pk, score, lines in rows]
    table = connection.ops.quote_name(Lead._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE TEMPORARY TABLE crm_lead_score_batch "
                "(id bigint PRIMARY KEY, score smallint, score_breakdown_id bigint)"
            )
            try:
                sql = "COPY crm_lead_score_batch (id, score, score_breakdown_id) FROM STDIN"
                with cursor.copy(sql) as copy:
                    for row in rows:
                        copy.write_row(row)
                cursor.execute(
                    f"UPDATE {table} AS lead "
                    "SET score = batch.score, score_breakdown_id = batch.score_breakdown_id "
                    "FROM crm_lead_score_batch AS batch WHERE lead.id = batch.id"
                )
                return cursor.rowcount
            finally:
                cursor.execute("DROP TABLE crm_lead_score_batch")
        cursor.executemany(
            f"UPDATE {table} SET score = %s, score_breakdown_id = %s WHERE id = %s",
            [(score, breakdown, pk) for pk, score, breakdown in rows],
        )
        return len(rows)
