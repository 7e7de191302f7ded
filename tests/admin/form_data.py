"""What a browser would POST back from an admin change page as it was rendered (form and inlines)."""

from django.forms import CheckboxInput


def _field_values(form) -> dict:
    data = {}
    for bound in form:
        value = bound.value()
        widget = bound.field.widget
        if isinstance(widget, CheckboxInput):
            if value:
                data[bound.html_name] = "on"
            continue
        if value is None:
            continue
        if isinstance(value, list | tuple):
            data[bound.html_name] = [str(item) for item in value]
        else:
            data[bound.html_name] = str(value)
    return data


def change_form_data(response) -> dict:
    """The POST data of the change (or history) page ``response``: its form's current values and every
    inline formset's management form and rows."""
    context = response.context
    data = _field_values(context["adminform"].form)
    for inline in context.get("inline_admin_formsets", []):
        formset = inline.formset
        data.update(_field_values(formset.management_form))
        for form in formset.forms:
            data.update(_field_values(form))
    return data
