"""Converting a lead from its admin page: the choices, what already exists, then what came out of it.

The page only gathers the choices; sales.services.lead_convert (the API's service too) decides
everything, and its errors come back onto the form with nothing changed.
"""

from django import forms
from django.contrib import messages
from django.contrib.admin.widgets import AutocompleteSelect
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import urlencode

from crm.admin_record import apply_service_errors
from crm.models import Account, Contact, Lead, Pipeline, Stage
from crm.selectors import conversion_account_match, conversion_contact_match

CREATE, EXISTING, NONE = "create", "existing", "none"


class StageChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Stage) -> str:
        return f"{obj.pipeline.name} › {obj.name}"


class DateInput(forms.DateInput):
    input_type = "date"


class LeadConvertForm(forms.Form):
    account_action = forms.ChoiceField(label="Account", widget=forms.RadioSelect)
    account = forms.ModelChoiceField(queryset=Account.objects.all(), required=False, label="Existing account")
    contact_action = forms.ChoiceField(label="Contact", widget=forms.RadioSelect)
    contact = forms.ModelChoiceField(queryset=Contact.objects.all(), required=False, label="Existing contact")
    create_opportunity = forms.BooleanField(label="Create an opportunity", required=False, initial=True)
    opportunity_name = forms.CharField(
        label="Opportunity name",
        max_length=200,
        required=False,
        widget=forms.TextInput(attrs={"class": "vTextField"}),
    )
    amount = forms.DecimalField(label="Amount", max_digits=14, decimal_places=2, min_value=0, required=False)
    close_date = forms.DateField(label="Expected close date", required=False, widget=DateInput)
    pipeline = forms.ModelChoiceField(queryset=Pipeline.objects.filter(is_active=True), required=False)
    stage = StageChoiceField(
        queryset=Stage.objects.filter(pipeline__is_active=True)
        .select_related("pipeline")
        .order_by("pipeline__sequence", "pipeline__name", "pipeline_id", "sequence", "id"),
        required=False,
    )

    # The service's argument names where they differ from the form's fields.
    service_fields = {"create_account": "account_action", "create_contact": "contact_action"}

    def __init__(self, *args, lead: Lead, admin_site, **kwargs):
        super().__init__(*args, **kwargs)
        self.lead = lead
        # The admin's autocomplete (searching the account and contact admins), fed by the lead's own
        # link fields so Django knows which admin answers.
        for name, link in (("account", "converted_account"), ("contact", "converted_contact")):
            field = self.fields[name]
            field.widget = AutocompleteSelect(Lead._meta.get_field(link), admin_site)
            field.widget.choices = field.choices
        self.existing_account = self.find_existing_account()
        self.existing_contact = self.find_existing_contact()

        company = lead.company_name.strip()
        if self.existing_account is not None:
            create_label = f"Use the account “{self.existing_account}”, which has the lead's company name"
        elif company:
            create_label = f"Create the account “{company}”"
        else:
            create_label = "Create an account (the lead has no company name)"
        self.fields["account_action"].choices = [
            (CREATE, create_label),
            (EXISTING, "Link another existing account"),
            (NONE, "No account"),
        ]
        person = lead.contact_name.strip() or lead.email.strip()
        if self.existing_contact is not None:
            contact = self.existing_contact
            create_label = f"Use the contact “{contact}” ({contact.email}), who has the lead's email"
        elif person:
            create_label = f"Create the contact “{person}”"
        else:
            create_label = "Create a contact (the lead has no contact name or email)"
        self.fields["contact_action"].choices = [
            (CREATE, create_label),
            (EXISTING, "Link another existing contact"),
            (NONE, "No contact"),
        ]
        self.fields["pipeline"].empty_label = f"The lead's pipeline ({lead.pipeline})"
        self.fields["stage"].empty_label = "The pipeline's first stage"
        # The same defaults as the service: an account from a company name, a contact from a person.
        self.initial.update(
            account_action=CREATE if company else NONE,
            contact_action=CREATE if person else NONE,
            create_opportunity=True,
            opportunity_name=lead.name,
            amount=lead.expected_revenue,
        )

    def find_existing_account(self) -> Account | None:
        return conversion_account_match(self.lead)

    def find_existing_contact(self) -> Contact | None:
        return conversion_contact_match(self.lead)

    def clean(self):
        data = super().clean()
        if data.get("account_action") == EXISTING and not data.get("account"):
            self.add_error("account", "Choose the account to link.")
        if data.get("contact_action") == EXISTING and not data.get("contact"):
            self.add_error("contact", "Choose the contact to link.")
        return data

    def service_kwargs(self) -> dict:
        """lead_convert's keyword arguments for these choices."""
        data = self.cleaned_data
        kwargs: dict = {}
        if data["account_action"] == EXISTING:
            kwargs["account"] = data["account"]
        else:
            kwargs["create_account"] = data["account_action"] == CREATE
        if data["contact_action"] == EXISTING:
            kwargs["contact"] = data["contact"]
        else:
            kwargs["create_contact"] = data["contact_action"] == CREATE
        kwargs["create_opportunity"] = data["create_opportunity"]
        if data["create_opportunity"]:
            kwargs.update(
                opportunity_name=data["opportunity_name"] or None,
                amount=data["amount"],
                close_date=data["close_date"],
                pipeline=data["pipeline"],
                stage=data["stage"],
            )
        return kwargs

    def outcome(self) -> dict[str, str]:
        """Whether the account and contact will be created, reused or linked: for the result page."""
        data = self.cleaned_data
        result = {}
        for name, existing in (("account", self.existing_account), ("contact", self.existing_contact)):
            action = data[f"{name}_action"]
            if action == EXISTING:
                result[name] = "linked"
            elif action == CREATE:
                result[name] = "reused" if existing is not None else "created"
        return result


# Converting may create all three, so it asks for the same permissions as the API's convert action.
CONVERT_PERMISSIONS = ("sales.add_opportunity", "crm.add_account", "crm.add_contact")


class LeadConvertAdminMixin:
    """``<id>/convert/`` and ``<id>/convert/done/`` on the lead admin."""

    def has_convert_permission(self, request, lead) -> bool:
        return self.has_change_permission(request, lead) and request.user.has_perms(CONVERT_PERMISSIONS)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/convert/", wrap(self.convert_view), name="crm_lead_convert"),
            path("<path:object_id>/convert/done/", wrap(self.converted_view), name="crm_lead_converted"),
            *super().get_urls(),
        ]

    def convert_view(self, request, object_id):
        # Function-level import: crm never imports sales at module level.
        from sales.services import lead_convert

        lead = self.get_record_or_404(request, object_id)
        if not self.has_convert_permission(request, lead):
            raise PermissionDenied
        if lead.is_closed:
            self.message_user(
                request, f"“{lead}” is already {lead.get_status_display().lower()}.", messages.WARNING
            )
            return HttpResponseRedirect(self.record_url(lead))
        form = LeadConvertForm(
            request.POST if request.method == "POST" else None, lead=lead, admin_site=self.admin_site
        )
        if request.method == "POST" and form.is_valid():
            try:
                conversion = lead_convert(lead=lead, user=request.user, **form.service_kwargs())
            except ValidationError as exc:
                apply_service_errors(form, exc, form.service_fields)
            else:
                self.log_change(request, conversion.lead, "Converted.")
                self.message_user(request, f"“{lead}” is converted.", messages.SUCCESS)
                url = reverse("admin:crm_lead_converted", args=[lead.pk])
                return HttpResponseRedirect(f"{url}?{urlencode(form.outcome())}")
        context = self.page_context(
            request,
            lead,
            "Convert lead",
            form=form,
            media=self.media + form.media,
            existing_account=form.existing_account,
            existing_contact=form.existing_contact,
        )
        return TemplateResponse(request, "admin/crm/lead/convert.html", context)

    def converted_view(self, request, object_id):
        lead = self.get_record_or_404(request, object_id, change=False)
        opportunity = getattr(lead, "converted_opportunity", None)
        outcome = {key: request.GET.get(key, "") for key in ("account", "contact")}
        context = self.page_context(
            request,
            lead,
            "Lead converted",
            lead=lead,
            account=lead.converted_account,
            contact=lead.converted_contact,
            opportunity=opportunity,
            outcome=outcome,
        )
        return TemplateResponse(request, "admin/crm/lead/converted.html", context)
