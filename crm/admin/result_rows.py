"""A changelist's rows written at the cost of their values, the same HTML as Django's.

Django's ``items_for_result`` works out each cell from scratch: it looks the column up on the model
and the admin, rebuilds a choice field's choices as a dict, reverses the row's change URL and resolves
it again to add the preserved filters, and passes every piece through ``format_html``. On a page of
100 leads that is 1,700 cells and about 40 ms, several times the page's SQL.

Here what does not depend on the row is worked out once per page, per column: where its value comes
from, its CSS classes, its choices, whether it links to the record, and the change URL with the
preserved filters, into which each row's id is put; and once per page the active language's number
format, time zone, date format and month and day names (``PageFormats``), which Django's
``display_for_field`` looks up again for every value (about 30 µs a date). Each cell then costs its
value, its formatting and one escape. Values of any other kind go through Django's own
``display_for_field`` and ``display_for_value``.

Django's own rows are kept where this would have to copy more of them: editable lists (the row forms),
popups (the value handed back to the opener), a primary key that is not an integer, a column the
admin or the model does not name plainly. ``tests/admin/test_result_rows.py`` compares the HTML of
every changelist of the site with Django's.
"""

import datetime
import functools
import html
from collections.abc import Callable

from django.conf import settings
from django.contrib.admin.templatetags import admin_list
from django.contrib.admin.templatetags.admin_urls import add_preserved_filters
from django.contrib.admin.utils import (
    FieldIsAForeignKeyColumnName,
    _get_non_gfk_field,
    display_for_field,
    display_for_value,
    lookup_field,
)
from django.core.exceptions import FieldDoesNotExist, ObjectDoesNotExist
from django.db import models
from django.urls import NoReverseMatch, reverse
from django.utils import dateformat, dates, formats, numberformat, timezone, translation
from django.utils.safestring import SafeString

# Stands for a row's id in the change URL worked out once per page (letters only: neither quoting
# nor escaping changes it, and the admin's "<path:object_id>" accepts it).
ID_MARK = "crmrowidmark"


def _escaped(value) -> str:
    """``conditional_escape(value)`` without its lazy-argument wrapper, as a plain str."""
    if hasattr(value, "__html__"):
        return value.__html__()
    return html.escape(str(value))


class _PageDateFormat(dateformat.DateFormat):
    """Django's ``DateFormat`` with the month and day names, "a.m.", "noon" and the like read from
    ``words`` (translated once a page) instead of translated again for every value."""

    def __init__(self, obj, *, words: dict):
        super().__init__(obj)
        self.words = words

    def a(self):
        return self.words["p.m."] if self.data.hour > 11 else self.words["a.m."]

    def A(self):
        return self.words["PM"] if self.data.hour > 11 else self.words["AM"]

    def P(self):
        if self.data.minute == 0 and self.data.hour == 0:
            return self.words["midnight"]
        if self.data.minute == 0 and self.data.hour == 12:
            return self.words["noon"]
        return f"{self.f()} {self.a()}"

    def b(self):
        return self.words["MONTHS_3"][self.data.month]

    def D(self):
        return self.words["WEEKDAYS_ABBR"][self.data.weekday()]

    def E(self):
        return self.words["MONTHS_ALT"][self.data.month]

    def F(self):
        return self.words["MONTHS"][self.data.month]

    def l(self):  # noqa: E743
        return self.words["WEEKDAYS"][self.data.weekday()]

    def M(self):
        return self.words["MONTHS_3"][self.data.month].title()

    def N(self):
        return self.words["MONTHS_AP"][self.data.month]


class PageFormats:
    """What Django's ``display_for_field`` reads for every value, read once for a page: the active
    language's decimal and thousand separators and grouping, the current time zone and the date-time
    format with its words. ``datetime`` and ``number`` give what ``display_for_field`` gives for a
    non-empty value of a date-time and a number field (``tests/admin/test_result_rows.py`` compares
    them in several languages and zones)."""

    def __init__(self):
        self.language = language = translation.get_language()
        self.decimal_sep = formats.get_format("DECIMAL_SEPARATOR", language, use_l10n=True)
        self.grouping = formats.get_format("NUMBER_GROUPING", language, use_l10n=True)
        self.thousand_sep = formats.get_format("THOUSAND_SEPARATOR", language, use_l10n=True)
        self.zone = timezone.get_current_timezone() if settings.USE_TZ else None

    @functools.cached_property
    def date_format(self) -> Callable[..., _PageDateFormat]:
        """``DateFormat(value)`` with this language's words, translated at the page's first date."""
        words = {
            name: {key: str(word) for key, word in getattr(dates, name).items()}
            for name in ("MONTHS", "MONTHS_3", "MONTHS_ALT", "MONTHS_AP", "WEEKDAYS", "WEEKDAYS_ABBR")
        }
        # The same msgids as django.utils.dateformat, so the same catalogue entries.
        _ = translation.gettext
        words.update(
            {
                "a.m.": _("a.m."),
                "p.m.": _("p.m."),
                "AM": _("AM"),
                "PM": _("PM"),
                "midnight": _("midnight"),
                "noon": _("noon"),
            }
        )
        return functools.partial(_PageDateFormat, words=words)

    @functools.cached_property
    def datetime_pieces(self) -> list[tuple[bool, str]]:
        """Django's Formatter.format, its format string split once: (True, letter) or (False, text)."""
        datetime_format = str(formats.get_format("DATETIME_FORMAT", self.language, use_l10n=True))
        return [
            (True, piece) if index % 2 else (False, dateformat.re_escaped.sub(r"\1", piece))
            for index, piece in enumerate(dateformat.re_formatchars.split(datetime_format))
            if index % 2 or piece
        ]

    def datetime(self, value) -> str:
        """``formats.localize(timezone.template_localtime(value))`` for a datetime."""
        if not isinstance(value, datetime.datetime):  # a date set on the instance, say: Django's way
            return formats.localize(timezone.template_localtime(value))
        if (
            self.zone is not None
            and value.utcoffset() is not None
            and getattr(value, "convert_to_local_time", True)
        ):
            value = value.astimezone(self.zone)
        formatter = self.date_format(value)
        return "".join(
            str(getattr(formatter, piece)()) if letter else piece for letter, piece in self.datetime_pieces
        )

    def number(self, value, decimal_pos=None) -> str:
        """``formats.number_format(value, decimal_pos)``."""
        return numberformat.format(
            value,
            self.decimal_sep,
            decimal_pos,
            self.grouping,
            self.thousand_sep,
            force_grouping=False,
            use_l10n=True,
        )


class _Column:
    """One column of the page: how to get a row's value and how to write its cell."""

    def __init__(self, cl, index: int, name, link_tag: str | None, row_link, page: PageFormats):
        model_admin = cl.model_admin
        self.name = name
        self.default_empty = model_admin.get_empty_value_display()
        self.link_tag = link_tag  # "th" or "td" when the cell links to the record
        self.row_link = row_link
        self.classes = self.base_classes = f"field-{admin_list._coerce_field_name(name, index)}"
        self.field = self.attr = None
        self.choices = None
        self.display = None  # how a non-empty value of a plain field is written (None: Django's way)
        self.kind = "lookup"  # Django's lookup_field for each row
        try:
            self.field = _get_non_gfk_field(cl.lookup_opts, name)
        except (FieldDoesNotExist, FieldIsAForeignKeyColumnName):
            if callable(name):
                self.kind, self.attr = "callable", name
            elif hasattr(model_admin, name) and name != "__str__":
                self.kind, self.attr = "callable", getattr(model_admin, name)
        else:
            self.kind = "field"
        field = self.field
        if field is not None and not field.auto_created:
            self.empty = self.default_empty
            if isinstance(field, (models.DateField, models.TimeField, models.ForeignKey)):
                self.classes += " nowrap"
            if isinstance(field.remote_field, models.ManyToOneRel):
                self.kind = "relation"
            elif getattr(field, "flatchoices", None):
                try:
                    self.choices = dict(field.flatchoices)
                except TypeError:  # unhashable choices: Django's way, row by row
                    self.choices = None
            else:
                self.display = _field_display(field, page)
        if name == "action_checkbox":
            self.classes = "action-checkbox"
        if self.kind == "callable":
            self.empty = getattr(self.attr, "empty_value_display", self.default_empty)
            self.boolean = getattr(self.attr, "boolean", False)
        self.class_attr = f' class="{self.classes}"'

    def cell(self, result) -> str:
        class_attr = self.class_attr
        field = self.field
        kind = self.kind
        if kind == "callable":
            try:
                value = self.attr(result)
            except ObjectDoesNotExist:  # as Django: the empty value, no "nowrap"
                repr_, class_attr = self.default_empty, f' class="{self.base_classes}"'
            else:
                repr_ = self._value_repr(value, self.empty, self.boolean)
                if isinstance(value, (datetime.date, datetime.time)):
                    class_attr = f' class="{self.classes} nowrap"'
        elif kind == "relation":
            try:
                related = getattr(result, field.name)
            except ObjectDoesNotExist:
                repr_, class_attr = self.default_empty, f' class="{self.base_classes}"'
            else:
                repr_ = self.empty if related is None else related
        elif kind == "field" and not field.auto_created:
            value = getattr(result, self.name)
            if isinstance(value, str) and value.strip() == "":
                value = ""
            if self.choices is not None:
                repr_ = self.choices.get(value, self.empty)
            elif self.display is not None:
                repr_ = self.empty if value in field.empty_values else self.display(value)
            else:
                repr_ = display_for_field(value, field, self.empty, avoid_link=self.link_tag is not None)
        else:
            repr_, class_attr = self._looked_up(result)
        if self.link_tag is None:
            return f"<td{class_attr}>{_escaped(repr_)}</td>"
        tag = self.link_tag
        return f"<{tag}{class_attr}>{self.row_link(result, repr_)}</{tag}>"

    @staticmethod
    def _value_repr(value, empty, boolean):
        if isinstance(value, str) and value.strip() == "":
            value = ""
        if not boolean and type(value) in (str, SafeString) and value:
            return value  # display_for_value's str(value)
        return display_for_value(value, empty, boolean)

    def _looked_up(self, result):
        """Django's way for a column named by anything else (the model's methods and properties)."""
        classes = [self.classes]
        try:
            field, attr, value = lookup_field(self.name, result, self.row_link.model_admin)
        except ObjectDoesNotExist:
            return self.default_empty, f' class="{self.classes}"'
        empty = getattr(attr, "empty_value_display", self.default_empty)
        if isinstance(value, str) and value.strip() == "":
            value = ""
        if field is None or field.auto_created:
            boolean = getattr(attr, "boolean", False)
            if isinstance(attr, property) and hasattr(attr, "fget"):
                boolean = getattr(attr.fget, "boolean", False)
            repr_ = display_for_value(value, empty, boolean)
            if isinstance(value, (datetime.date, datetime.time)):
                classes.append("nowrap")
        else:
            repr_ = display_for_field(value, field, empty, avoid_link=self.link_tag is not None)
        return repr_, f' class="{" ".join(classes)}"'


class _RowLink:
    """The link of a row to its record: the page's change URL with the row's id put in."""

    def __init__(self, cl):
        self.model_admin = cl.model_admin
        opts = cl.opts
        try:
            url = reverse(
                f"admin:{opts.app_label}_{opts.model_name}_change",
                args=(ID_MARK,),
                current_app=cl.model_admin.admin_site.name,
            )
        except NoReverseMatch:
            self.head = None  # no change page: the cell shows its text alone
            return
        url = add_preserved_filters({"preserved_filters": cl.preserved_filters, "opts": opts}, url)
        head, sep, query = _escaped(url).partition("?")
        self.head, self.tail = head.split(ID_MARK), sep + query
        self.pk_attname = cl.pk_attname

    def __call__(self, result, repr_) -> str:
        if self.head is None:
            return _escaped(repr_)
        url = str(getattr(result, self.pk_attname)).join(self.head) + self.tail
        return f'<a href="{url}">{_escaped(repr_)}</a>'


def _field_display(field, page: PageFormats):
    """How ``display_for_field`` writes a non-empty value of ``field`` (a field without choices), where
    that is a date-time, a number or the value itself; None for the other kinds (Django's way)."""
    if isinstance(field, models.BooleanField):
        return None
    if isinstance(field, models.DateTimeField):
        return page.datetime
    if isinstance(field, (models.DateField, models.TimeField)):
        return None
    if isinstance(field, models.DecimalField):
        places = field.decimal_places
        return lambda value: page.number(value, places)
    if isinstance(field, (models.IntegerField, models.FloatField)):
        return page.number
    if isinstance(field, (models.CharField, models.TextField)) and not isinstance(
        field, (models.URLField, models.JSONField)
    ):
        return _text
    return None


def _text(value):
    """``display_for_value`` of a non-empty text: the text (anything else: Django's way)."""
    return value if type(value) is str else display_for_value(value, "")


def rows_are_ours(cl) -> bool:
    """Whether this page's rows can be written here rather than by Django's ``items_for_result``."""
    pk = cl.lookup_opts.pk
    return (
        not cl.formset
        and not cl.is_popup
        and not cl.to_field
        and isinstance(pk, (models.AutoField, models.BigAutoField, models.IntegerField))
        and cl.pk_attname == pk.attname
    )


def _link_in_col(is_first: bool, field_name, cl) -> bool:
    if cl.list_display_links is None:
        return False
    if is_first and not cl.list_display_links:
        return True
    return field_name in cl.list_display_links


def result_rows(cl) -> list:
    """The page's rows as Django's ``results(cl)`` gives them: one list of cells per row."""
    row_link = _RowLink(cl)
    page = PageFormats()
    columns, first = [], True
    for index, name in enumerate(cl.list_display):
        link_tag = None
        if _link_in_col(first, name, cl):
            link_tag, first = ("th" if first else "td"), False
        columns.append(_Column(cl, index, name, link_tag, row_link, page))
    return [
        admin_list.ResultList(None, [SafeString(column.cell(result)) for column in columns])
        for result in cl.result_list
    ]


def result_list(cl) -> dict:
    """The context of ``change_list_results.html``: Django's ``result_list(cl)`` with faster rows."""
    if not rows_are_ours(cl):
        return admin_list.result_list(cl)
    headers = list(admin_list.result_headers(cl))
    return {
        "cl": cl,
        "result_hidden_fields": list(admin_list.result_hidden_fields(cl)),
        "result_headers": headers,
        "num_sorted_fields": sum(1 for header in headers if header["sortable"] and header["sorted"]),
        "results": result_rows(cl),
    }
