"""Likely duplicates of a lead, contact or account, each with the reasons it matched.

Rules, each against records of the same kind:
- same email, case-insensitive;
- same company email domain (the part after @; an account's website domain) unless it is a public
  provider in ``PUBLIC_EMAIL_DOMAINS``, where sharing a domain says nothing;
- same phone digits (formatting ignored; at least ``MIN_PHONE_DIGITS`` digits);
- same company name (a lead's company, an account's name) once case, punctuation, a leading "the" and
  the legal forms that end it are set aside: "Globex Corp." is "GLOBEX, Inc." (``company_name_key``;
  on PostgreSQL the indexed ``crm.models.base.CompanyNameKey``);
- similar names: trigram similarity (pg_trgm) at least ``TRIGRAM_THRESHOLD`` on PostgreSQL; on other
  databases difflib's ratio at least ``DIFFLIB_THRESHOLD`` over at most ``FALLBACK_CANDIDATES``
  records that share a word of the name, found in SQL first.
Matches come best first: more reasons, then a higher name similarity, then the oldest.
"""

import difflib
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import reduce
from urllib.parse import urlsplit

from django.db import connections, models, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Concat, Lower, Upper

from crm.models import Account, Contact, Lead
from crm.models.base import LEGAL_FORMS, CompanyNameKey, email_domain_expression, phone_digits_expression
from crm.selectors import with_email

PUBLIC_EMAIL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "msn.com",
        "yahoo.com",
        "yahoo.co.uk",
        "ymail.com",
        "aol.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "proton.me",
        "protonmail.com",
        "gmx.com",
        "gmx.de",
        "gmx.net",
        "web.de",
        "mail.com",
        "yandex.com",
        "yandex.ru",
        "zoho.com",
        "fastmail.com",
        "hey.com",
        "qq.com",
        "163.com",
    }
)
MIN_PHONE_DIGITS = 6
# 0.5 called every "Cheryl W…" a duplicate of Cheryl Wilson (at a million leads each of 40 names drawn had
# 20 or more such matches), and its loose index scan read 16,000 rows for a common company name. A
# company's legal form, what mostly kept the same company under 0.6 ("Acme Analytics Inc" and "… Ltd":
# 0.64; "Globex Corporation" and "Globex Corp": 0.55), is the same-company-name rule's now.
TRIGRAM_THRESHOLD = 0.6
DIFFLIB_THRESHOLD = 0.8
FALLBACK_CANDIDATES = 200
MAX_MATCHES = 20


@dataclass
class DuplicateMatch:
    record: models.Model
    reasons: list[str] = field(default_factory=list)
    similarity: float = 0.0


@dataclass(frozen=True)
class DuplicateRules:
    """Which fields of a model the rules read."""

    email: str | None
    phones: tuple[str, ...]
    names: tuple[str, ...]  # "first_name+last_name" joins fields with a space
    company: str | None = None  # the field holding a company's name, for the same-company-name rule


RULES = {
    Lead: DuplicateRules(
        email="email", phones=("phone",), names=("contact_name", "company_name"), company="company_name"
    ),
    Contact: DuplicateRules(email="email", phones=("phone", "mobile"), names=("first_name+last_name",)),
    Account: DuplicateRules(email=None, phones=("phone",), names=("name",), company="name"),
}


def rule_fields(model: type[models.Model]) -> list[str]:
    """The fields ``find_duplicates`` reads of the records it compares (an account's domain comes from
    its website): enough for ``queryset.only(...)`` where only the matches' ids are wanted."""
    rules = RULES[model]
    fields = [
        "pk",
        *rules.phones,
        *([rules.email] if rules.email else []),
        *([rules.company] if rules.company else []),
    ]
    if model is Account:
        fields.append("website")
    return fields


def phone_digits(value: str) -> str:
    return re.sub(r"\D", "", value or "")


def email_domain(email: str) -> str:
    return email.rpartition("@")[2].strip().lower() if "@" in (email or "") else ""


_NOT_ALPHANUMERIC = re.compile(r"[\W_]+")
_LEADING_THE = re.compile(r"^\s*the\s+")
_TRAILING_LEGAL_FORMS = re.compile(r"(\s+(" + "|".join(LEGAL_FORMS) + r"))+\s*$")


def company_name_key(name: str) -> str:
    """What ``crm.models.base.CompanyNameKey`` computes in SQL, in Python: "The Globex Corp." → "globex"."""
    key = _NOT_ALPHANUMERIC.sub(" ", (name or "").lower())
    return _TRAILING_LEGAL_FORMS.sub("", _LEADING_THE.sub("", key), count=1).strip()


def website_domain(url: str) -> str:
    url = (url or "").strip().lower()
    if not url:
        return ""
    host = urlsplit(url if "//" in url else f"//{url}").hostname or ""
    return host.removeprefix("www.")


def company_domain(record) -> str:
    """The record's company domain, or "" when it has none or it is a public provider."""
    domain = website_domain(record.website) if isinstance(record, Account) else email_domain(record.email)
    return "" if domain in PUBLIC_EMAIL_DOMAINS else domain


def _name_expression(name: str):
    if "+" in name:
        first, last = name.split("+")
        return Concat(first, Value(" "), last, output_field=models.CharField())
    return F(name)


def _name_value(record, name: str) -> str:
    return " ".join(getattr(record, part) or "" for part in name.split("+")).strip()


def find_duplicates(record, *, queryset=None, limit: int = MAX_MATCHES) -> list[DuplicateMatch]:
    """Likely duplicates of ``record`` among ``queryset`` (default: every record of its kind)."""
    model = type(record)
    rules = RULES[model]
    base = (queryset if queryset is not None else model._default_manager.all()).exclude(pk=record.pk)
    matches: dict[int, DuplicateMatch] = {}

    def add(found, reason: str, similarity: float = 0.0):
        for other in found:
            match = matches.setdefault(other.pk, DuplicateMatch(other))
            if reason not in match.reasons:
                match.reasons.append(reason)
            match.similarity = max(match.similarity, similarity)

    email = (getattr(record, rules.email) or "").strip() if rules.email else ""
    if email:
        add(with_email(base, email, rules.email)[:limit], "same email")

    domain = company_domain(record)
    if domain:
        if rules.email:
            # Through the index of the address's domain (crm.models.base.email_domain_expression).
            same_domain = base.alias(_domain=email_domain_expression(rules.email)).filter(_domain=domain)
            # The index's expression is the domain as company_domain reads it: what it finds matches.
            read = limit
        else:
            same_domain = base.filter(
                Q(website__icontains=f"//{domain}") | Q(website__icontains=f".{domain}")
            )
            # A website holding the domain may be another's ("//acme.test.example.org"): checked below.
            read = limit * 5
        # No order: the newest first would read and sort every record of the domain (8,000 leads
        # of one company's domain took 29 ms); the matches are ranked below anyway.
        candidates = [r for r in same_domain.order_by()[:read] if company_domain(r) == domain]
        add(candidates[:limit], f"same company domain ({domain})")

    phones = {d for f in rules.phones if len(d := phone_digits(getattr(record, f))) >= MIN_PHONE_DIGITS}
    if phones:
        digits_of = base.annotate(**{f"_digits_{f}": phone_digits_expression(f) for f in rules.phones})
        condition = reduce(lambda q, f: q | Q(**{f"_digits_{f}__in": sorted(phones)}), rules.phones, Q())
        # No order: the ranking below decides, and an order would let the planner walk the whole table
        # in it instead of looking the numbers up in their indexes.
        found = [
            r for r in digits_of.filter(condition).order_by()[: limit * 2] if _shares_phone(r, rules, phones)
        ]
        add(found[:limit], "same phone")

    same_company = set()
    company = (getattr(record, rules.company) or "") if rules.company else ""
    if len(company_name_key(company)) >= 3:
        found = _same_company_name(base, rules.company, company, limit)
        add(found, "same company name", 1.0)
        same_company = {r.pk for r in found}

    names = [(name, value) for name in rules.names if len(value := _name_value(record, name)) >= 3]
    with _trigram_threshold(base.db, bool(names)):
        for name, value in names:
            among = base
            if name == rules.company and len(same_company) >= limit:
                # The same company name filled the list: a similar one ranks below those, unless another
                # rule found it already, so only those are compared (a common name has thousands of near
                # namesakes: 3 s through the trigram index at five million leads).
                among = base.filter(pk__in=[pk for pk in matches if pk not in same_company])
            for other, similarity in _similar_names(among, name, value, limit):
                if name == rules.company and other.pk in same_company:
                    continue  # one reason for one name
                add([other], f"similar name ({similarity:.0%})", similarity)

    ranked = sorted(matches.values(), key=lambda m: (-len(m.reasons), -m.similarity, m.record.pk))
    return ranked[:limit]


def _shares_phone(record, rules: DuplicateRules, phones: set[str]) -> bool:
    # The SQL only strips common separators; this confirms on the digits alone.
    return any(phone_digits(getattr(record, f)) in phones for f in rules.phones)


def _same_company_name(base, field: str, value: str, limit: int) -> list[models.Model]:
    if connections[base.db].vendor == "postgresql":
        # Through the key's index (crm 0043). No order: an order would let the planner walk the whole
        # table in it; the matches are ranked by the caller.
        keyed = base.alias(_key=CompanyNameKey(F(field))).filter(_key=CompanyNameKey(Value(value)))
        return list(keyed.order_by()[:limit])
    # Elsewhere: the records holding the key's longest word, found in SQL, compared in Python.
    key = company_name_key(value)
    word = max(key.split(), key=len)
    candidates = base.filter(**{f"{field}__icontains": word}).order_by("pk")[:FALLBACK_CANDIDATES]
    return [r for r in candidates if company_name_key(getattr(r, field)) == key][:limit]


def _similar_names(base, name: str, value: str, limit: int) -> list[tuple[models.Model, float]]:
    expression = _name_expression(name)
    if connections[base.db].vendor == "postgresql":
        return _similar_names_by_trigram(base, expression, value, limit)
    # No trigrams here: records sharing a word of the name (found in SQL) are compared in Python.
    words = sorted({w for w in re.findall(r"\w+", value.lower()) if len(w) >= 3}, key=len, reverse=True)[:3]
    if not words:
        return []
    annotated = base.annotate(_name=Lower(expression))
    shares_word = reduce(lambda q, w: q | Q(_name__contains=w), words, Q())
    wanted = value.lower()
    scored = []
    for other in annotated.filter(shares_word).order_by("pk")[:FALLBACK_CANDIDATES]:
        ratio = difflib.SequenceMatcher(None, wanted, other._name.strip()).ratio()
        if ratio >= DIFFLIB_THRESHOLD:
            scored.append((other, ratio))
    scored.sort(key=lambda item: (-item[1], item[0].pk))
    return scored[:limit]


def _similar_names_by_trigram(base, expression, value: str, limit: int) -> list[tuple[models.Model, float]]:
    """Names at least ``TRIGRAM_THRESHOLD`` similar, found through the trigram index on ``UPPER(name)``,
    inside ``_trigram_threshold``.

    ``similarity(name, value) >= t`` alone reads every row of the table (300 ms at a million leads): no
    index answers a function's result. The ``%`` operator is what a trigram index answers, at the
    threshold ``pg_trgm.similarity_threshold`` says, which ``_trigram_threshold`` sets to ours, so the
    index hands over only the names that can reach it (trigrams ignore case, so
    ``UPPER(name) % UPPER(value)`` finds what ``name % value`` would). The similarity is then computed
    on those alone.
    """
    from django.contrib.postgres.lookups import TrigramSimilar
    from django.contrib.postgres.search import TrigramSimilarity

    found = (
        base.annotate(_similarity=TrigramSimilarity(expression, value))
        .filter(TrigramSimilar(Upper(expression), Value(value.upper())), _similarity__gte=TRIGRAM_THRESHOLD)
        .order_by("-_similarity", "pk")[:limit]
    )
    return [(other, float(other._similarity)) for other in found]


@contextmanager
def _trigram_threshold(db: str, needed: bool):
    """On PostgreSQL, ``pg_trgm.similarity_threshold`` at ``TRIGRAM_THRESHOLD`` for the statements run
    inside, then put back as it was: set once for all of a record's names (each set and reset is two
    statements more)."""
    if not needed or connections[db].vendor != "postgresql":
        yield
        return
    setting = "pg_trgm.similarity_threshold"
    with transaction.atomic(using=db, savepoint=False), connections[db].cursor() as cursor:
        # similarity() loads pg_trgm's library, and with it its setting, before the row is read.
        cursor.execute(
            "SELECT similarity('', ''), current_setting(%s), set_config(%s, %s, true)",
            [setting, setting, str(TRIGRAM_THRESHOLD)],
        )
        previous = cursor.fetchone()[1]
        yield
        cursor.execute("SELECT set_config(%s, %s, true)", [setting, previous])
