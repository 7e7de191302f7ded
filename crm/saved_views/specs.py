"""What a list offers a saved view: its columns (the ModelAdmin's list_display), which of them sort,
its filters' query parameters and whether it searches. Read from the admin registered for the model,
so a view can only hold what the changelist itself would accept."""

from dataclasses import dataclass
from functools import cached_property

from django.contrib import admin
from django.contrib.admin import FieldListFilter
from django.contrib.admin.utils import get_fields_from_path, label_for_field
from django.contrib.admin.views.main import IGNORED_PARAMS, ORDER_VAR, PAGE_VAR, SEARCH_VAR
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.http import HttpRequest

# Query parameters of a changelist that are about the page, not the view: never saved.
PAGE_PARAMETERS = frozenset({*IGNORED_PARAMS, PAGE_VAR, "e", "_facets", "view", "_columns"}) - {
    ORDER_VAR,
    SEARCH_VAR,
}


@dataclass(frozen=True)
class ListSpec:
    key: str
    model_admin: admin.ModelAdmin

    @property
    def model(self) -> type[models.Model]:
        return self.model_admin.model

    @property
    def label(self) -> str:
        return str(self.model._meta.verbose_name_plural)

    @cached_property
    def columns(self) -> list[str]:
        """The list's own columns, in its order (the names list_display gives them)."""
        return [_column_name(item) for item in self.model_admin.list_display]

    @cached_property
    def locked_columns(self) -> list[str]:
        """Columns edited in the list itself: always shown, or their rows could not be saved."""
        return [name for name in self.model_admin.list_editable if name in self.columns]

    def column_label(self, name: str) -> str:
        if name == "__str__":
            return str(self.model._meta.verbose_name)
        return str(label_for_field(name, self.model, self.model_admin))

    def column_sortable(self, name: str) -> bool:
        sortable_by = self.model_admin.sortable_by
        if sortable_by is not None and name not in sortable_by:
            return False
        try:
            self.model._meta.get_field(name)
            return True
        except FieldDoesNotExist:
            pass
        if name == "__str__":
            return False
        attribute = getattr(self.model_admin, name, None) or getattr(self.model, name, None)
        return getattr(attribute, "admin_order_field", None) is not None

    @property
    def searchable(self) -> bool:
        return bool(self.model_admin.search_fields)

    def filter_parameters(self, user) -> set[str]:
        """The query parameters the list's filters (and date drill-down) take, as ``user`` sees them."""
        request = HttpRequest()
        request.user = user
        request.method = "GET"
        names: set[str] = set()
        model = self.model
        for list_filter in self.model_admin.get_list_filter(request):
            if isinstance(list_filter, type) and not issubclass(list_filter, FieldListFilter):
                spec = list_filter(request, {}, model, self.model_admin)
            else:
                if isinstance(list_filter, (tuple, list)):
                    field_path, filter_class = list_filter
                else:
                    field_path, filter_class = list_filter, FieldListFilter.create
                field = get_fields_from_path(model, field_path)[-1]
                spec = filter_class(field, request, {}, model, self.model_admin, field_path=field_path)
            names.update(spec.expected_parameters())
        hierarchy = self.model_admin.date_hierarchy
        if hierarchy:
            names.update(f"{hierarchy}__{part}" for part in ("year", "month", "day"))
        return names


def _column_name(item) -> str:
    return item if isinstance(item, str) else item.__name__


def list_spec(key: str, site: admin.AdminSite | None = None) -> ListSpec | None:
    """The list ``key`` ("crm.lead") of a model registered in the admin with saved views, or None."""
    from crm.admin.saved_views import SavedViewsMixin

    site = site or admin.site
    for model, model_admin in site._registry.items():
        if (
            model._meta.label_lower == key
            and isinstance(model_admin, SavedViewsMixin)
            and model_admin.saved_views_enabled
        ):
            return ListSpec(key=key, model_admin=model_admin)
    return None


def list_specs(site: admin.AdminSite | None = None) -> list[ListSpec]:
    """Every list that takes saved views."""
    from crm.admin.saved_views import SavedViewsMixin

    site = site or admin.site
    specs = [
        ListSpec(key=model._meta.label_lower, model_admin=model_admin)
        for model, model_admin in site._registry.items()
        if isinstance(model_admin, SavedViewsMixin) and model_admin.saved_views_enabled
    ]
    return sorted(specs, key=lambda spec: spec.key)
