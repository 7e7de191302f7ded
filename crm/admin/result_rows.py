"""A changelist's rows written at the cost of their values, the same HTML as Django's.

Django's ``items_for_result`` works out each cell from scratch: it looks the column up on the model
and the admin, rebuilds a choice field's choices as a dict, reverses the row's change URL and resolves
it again to add the preserved filters, and passes every piece through ``format_html``. On a page of
100 leads that is 1,700 cells and about 40 ms, several times the page's SQL.

Here what does not depend on the row is worked out once per page, per column: where its value comes
from, its CSS classes, its choices, whether it links to the record, and the change URL with the
preserved filters, into which each row's id is put. Each cell then costs its value, its formatting
(Django's own ``display_for_field`` and ``display_for_value``) and one escape.

Django's own rows are kept where this would have to copy more of them: editable lists (the row forms),
popups (the value handed back to the opener), a primary key that is not an integer, a column the
admin or the model does not name plainly. ``tests/admin/test_result_rows.py`` compares the HTML of
every changelist of the site with Django's.
"""

import datetime
import html

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
from django.utils.safestring import mark_safe

# Stands for a row's id in the change URL worked out once per page (letters only: neither quoting
# nor escaping changes it, and the admin's "<path:object_id>" accepts it).
ID_MARK = "crmrowidmark"


def _escaped(value) -> str:
    """``conditional_escape(value)`` without its lazy-argument wrapper, as a plain str."""
    if hasattr(value, "__html__"):
        return value.__html__()
    return html.escape(str(value))


class _Column:
    """One column of the page: how to get a row's value and how to write its cell."""

    def __init__(self, cl, index: int, name, link_tag: str | None, row_link):
        model_admin = cl.model_admin
        self.name = name
        self.default_empty = model_admin.get_empty_value_display()
        self.link_tag = link_tag  # "th" or "td" when the cell links to the record
        self.row_link = row_link
        self.classes = self.base_classes = f"field-{admin_list._coerce_field_name(name, index)}"
        self.field = self.attr = None
        self.choices = None
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
    columns, first = [], True
    for index, name in enumerate(cl.list_display):
        link_tag = None
        if _link_in_col(first, name, cl):
            link_tag, first = ("th" if first else "td"), False
        columns.append(_Column(cl, index, name, link_tag, row_link))
    return [
        admin_list.ResultList(None, [mark_safe(column.cell(result)) for column in columns])
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
