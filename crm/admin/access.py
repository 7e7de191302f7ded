"""Relation fields in the admin that may point at records the user cannot see (a deal's lead, an
activity's lead or deal): offered and accepted only among visible records, and shown as "a record
you cannot see" (read-only, so saving the form keeps the link) when the current one is hidden."""

from django.contrib import admin

from crm.selectors import HIDDEN_RECORD, record_is_visible, record_visibility_is_restricted, record_visible_to


class HiddenRelationsAdminMixin:
    """For a ModelAdmin whose ``hidden_relations`` (some of "lead", "opportunity") name relations to
    records its users may not all see."""

    hidden_relations: tuple[str, ...] = ()

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name in self.hidden_relations:
            # A crafted id of a record the user cannot see is "not one of the available choices".
            kwargs["queryset"] = record_visible_to(db_field.related_model, request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def _hidden(self, request, obj) -> set[str]:
        if obj is None or obj.pk is None:
            return set()
        hidden = set()
        for name in self.hidden_relations:
            related = self.model._meta.get_field(name).related_model
            if getattr(obj, f"{name}_id") is None or not record_visibility_is_restricted(
                related, request.user
            ):
                continue
            if not record_is_visible(user=request.user, record=getattr(obj, name)):
                hidden.add(name)
        return hidden

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        hidden = self._hidden(request, obj)
        if not hidden:
            return fieldsets
        return [
            (name, {**options, "fields": [f"hidden_{f}" if f in hidden else f for f in options["fields"]]})
            for name, options in fieldsets
        ]

    def get_readonly_fields(self, request, obj=None):
        readonly = tuple(super().get_readonly_fields(request, obj))
        return (*readonly, *(f"hidden_{name}" for name in sorted(self._hidden(request, obj))))

    @admin.display(description="lead")
    def hidden_lead(self, obj):
        return HIDDEN_RECORD

    @admin.display(description="opportunity")
    def hidden_opportunity(self, obj):
        return HIDDEN_RECORD
