"""Where each app says which of its rows hold a person's data, and how to export and anonymise them.

Two kinds of entry, filled from each app's registration (crm's in ``crm.privacy.sources``, sales's and
activities's from their ``register_with_crm()``), so that every app owns its data and crm imports none:

- ``PersonalData``: rows *linked* to the person (their leads, contacts, the activities on them, their
  campaign memberships...). ``find(person)`` returns them; they are exported whole and anonymised:
  ``erase`` sets fields to fixed values, ``scrub`` replaces the person's identifiers inside free text
  (a lead's name "Acme — Ann Smith" keeps "Acme"), ``delete`` removes the rows, ``anonymise`` does
  what the three cannot (a stored file). A model with an audit trail (django-simple-history) gets the
  same treatment in its history table, for the versions of the same rows.
- ``TextCopies``: columns anywhere that may *quote* the person in free text without a link to them (a
  notification's title, an outbox event's payload, a job's report of bad import rows, the admin log):
  every occurrence of the person's identifiers there is replaced.

Adding a kind of personal data (consent records, say) is one ``register_personal_data`` call.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Model, Q, QuerySet


@dataclass
class Person:
    """Who a privacy request is about: the addresses, the lead and contact rows that are them, and
    the identifiers (addresses, names, phone numbers) erased wherever free text quotes them."""

    emails: set[str] = field(default_factory=set)
    lead_ids: set[int] = field(default_factory=set)
    contact_ids: set[int] = field(default_factory=set)
    needles: set[str] = field(default_factory=set)
    # The ids found by each source so far (key -> ids), for sources that follow another's rows
    # (the notes on the person's activities).
    found: dict[str, list[int]] = field(default_factory=dict)

    def email_q(self, name: str) -> Q:
        """Rows whose ``name`` is one of the person's addresses (any case); matches nothing without one."""
        q = Q(pk__in=[])
        for email in self.emails:
            q |= Q(**{f"{name}__iexact": email})
        return q

    def record_q(self, *, record_type: str = "record_type", record_id: str = "record_id") -> Q:
        """Rows that point at the person's leads or contacts through a (record_type, record_id) pair."""
        return Q(**{record_type: "lead", f"{record_id}__in": sorted(self.lead_ids)}) | Q(
            **{record_type: "contact", f"{record_id}__in": sorted(self.contact_ids)}
        )


@dataclass(frozen=True)
class PersonalData:
    key: str  # "leads": the key in the export and in the erasure's counts
    model: type[Model]
    # (person) -> the rows linked to the person
    find: Callable[[Person], QuerySet]
    # field -> the value it takes (a constant: one UPDATE for every row)
    erase: dict[str, Any] = field(default_factory=dict)
    # free-text fields in which the person's identifiers are replaced, the rest kept
    scrub: tuple[str, ...] = ()
    # the rows are removed rather than anonymised (an unsubscribed address)
    delete: bool = False
    # (queryset of the found rows, person) -> None: what erase, scrub and delete cannot do
    anonymise: Callable[[QuerySet, Person], None] | None = None
    # fields left out of the export (secrets, derived columns)
    export_exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class TextCopies:
    model: type[Model]
    fields: tuple[str, ...]


_personal_data: dict[str, PersonalData] = {}
_text_copies: list[TextCopies] = []


def register_personal_data(entry: PersonalData) -> None:
    """Add (or replace) a kind of person-linked rows; found, exported and erased in registration order."""
    _personal_data[entry.key] = entry


def register_text_copies(model: type[Model], fields: Iterable[str]) -> None:
    """Columns of ``model`` that may quote a person in free text: scrubbed of them on erasure."""
    entry = TextCopies(model=model, fields=tuple(fields))
    if entry not in _text_copies:
        _text_copies.append(entry)


def personal_data() -> list[PersonalData]:
    return list(_personal_data.values())


def text_copies() -> list[TextCopies]:
    return list(_text_copies)
