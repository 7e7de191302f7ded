"""Converting a lead from its admin page: the choices, what already exists, then what came out of it.

Conversion belongs to sales (it creates an opportunity), so sales registers it on the lead's admin as
a transition (crm.admin.transitions). The page only gathers the choices; sales.services.lead_convert
(the API's service too) decides everything, and its errors come back onto the form with nothing changed.
"""

from django import forms
from django.contrib.admin.widgets import AutocompleteSelect
from django.template.response import TemplateResponse
from django.utils.http import urlencode

from crm.admin.base import DateInput
from crm.admin.transitions import Transition, register_transition
from crm.models import Account, Contact, Lead, LeadStatus, Pipeline, Stage
from crm.selectors import conversion_account_match, conversion_contact_match
from sales.services import lead_convert

CREATE, EXISTING, NONE = "create", "existing", "none"


class StageChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Stage) -> str:
        return f"{obj.pipeline.name} › {obj.name}"


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
        self.fields["stage"].empty_label = (
            f"The lead's stage ({lead.stage.name})"
            if not lead.stage.is_closed
            else "The pipeline's first stage"
        )
        self.fields["stage"].help_text = (
            "Empty: the opportunity carries on in the lead's stage (in the lead's pipeline), else it starts "
            "in its pipeline's first stage; it takes the stage's probability."
        )
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


def converted_url(modeladmin, lead, form) -> str:
    """The conversion's result page, told what was created, reused or linked."""
    url = modeladmin.record_url(lead, "converted")
    return f"{url}?{urlencode(form.outcome())}"


def converted_view(modeladmin, request, lead):
    """``<id>/convert/done/``: what the lead became."""
    opportunity = getattr(lead, "converted_opportunity", None)
    outcome = {key: request.GET.get(key, "") for key in ("account", "contact")}
    context = modeladmin.page_context(
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


LEAD_CONVERT = Transition(
    name="convert",
    label="Convert",
    title=lambda lead: "Convert lead",
    run=lambda *, record, user, **choices: lead_convert(lead=record, user=user, **choices).lead,
    applies=lambda lead: not lead.is_closed,
    permitted=lambda user, lead: user.has_perms(CONVERT_PERMISSIONS),
    make_form=lambda data, *, record, admin_site: LeadConvertForm(data, lead=record, admin_site=admin_site),
    refusal=lambda lead: f"“{lead}” is already {lead.get_status_display().lower()}.",
    refused_redirects=True,
    log_message=lambda lead: "Converted.",
    success_message=lambda lead: f"“{lead}” is converted.",
    done_url=converted_url,
    done_view=converted_view,
    done_name="converted",
    done_label="Conversion",
    done_shown=lambda lead: lead.status == LeadStatus.CONVERTED,
    page_context=lambda form: {
        "existing_account": form.existing_account,
        "existing_contact": form.existing_contact,
    },
    template="admin/crm/lead/convert.html",
    css_class="crm-tool-won",
    position=10,
)

register_transition("crm.lead", LEAD_CONVERT)
