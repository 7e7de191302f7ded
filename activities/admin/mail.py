"""Email in the admin: mailboxes (a user's own; shared ones for CRM Admins), the emails logged, the
"Send email" page opened from a lead's, deal's, contact's or account's page, and a meeting's
"Send invitation"."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import urlencode

from activities import selectors
from activities.admin.records import RecordLinkMixin, _back
from activities.attachables import record_admin_url, record_type_of
from activities.mail import inbound, outbound
from activities.models import Activity, ActivityType, EmailMessage, Mailbox
from crm.admin.base import ServiceModelAdmin
from crm.admin.record import RecordAction, register_record_actions
from crm.models import Contact, EmailTemplate


class MailboxForm(forms.ModelForm):
    password = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        required=False,
        help_text="Stored encrypted and never shown. Leave empty to keep the stored password.",
    )

    class Meta:
        model = Mailbox
        fields = ("name", "owner", "host", "port", "use_ssl", "username", "password", "folder")
        fields += ("create_leads", "is_active")

    def clean(self):
        data = super().clean()
        if self.instance.pk is None and not data.get("password"):
            self.add_error("password", "Give the mailbox's password.")
        return data


@admin.register(Mailbox)
class MailboxAdmin(ServiceModelAdmin):
    form = MailboxForm
    list_display = ("name", "owner", "host", "username", "is_active", "last_polled_at", "last_error")
    list_filter = ("is_active",)
    list_select_related = ("owner",)
    search_fields = ("name", "host", "username")
    autocomplete_fields = ("owner",)
    readonly_fields = ("last_uid", "last_polled_at", "last_error", "created_at", "updated_at")
    actions = ("poll_now",)

    def get_queryset(self, request):
        return selectors.mailbox_visible_to(request.user)

    def get_fields(self, request, obj=None):
        fields = list(MailboxForm.Meta.fields)
        if not request.user.has_perm("activities.manage_all_mailboxes"):
            fields.remove("owner")  # a user's mailboxes are their own
        return [*fields, *(self.readonly_fields if obj else ())]

    def get_form(self, request, obj=None, change=False, **kwargs):
        base = super().get_form(request, obj, change, **kwargs)

        class PasswordForm(base):
            """The password is no model field: handed to the service beside the form's data."""

            def clean(self):
                data = super().clean()
                request._crm_mailbox_password = data.get("password") or ""
                return data

        return PasswordForm

    def _with_password(self, request, data):
        password = getattr(request, "_crm_mailbox_password", "")
        return {**data, "password": password} if password else data

    def create_record(self, request, data):
        return inbound.mailbox_create(user=request.user, data=self._with_password(request, data))

    def update_record(self, request, obj, data):
        return inbound.mailbox_update(user=request.user, mailbox=obj, data=self._with_password(request, data))

    def delete_record(self, request, obj):
        inbound.mailbox_delete(user=request.user, mailbox=obj)

    @admin.action(description="Read the selected mailboxes now", permissions=["change"])
    def poll_now(self, request, queryset):
        for mailbox in queryset:
            try:
                inbound._ensure_may_manage(request.user, mailbox, "change")
            except PermissionDenied as exc:
                self.message_user(request, f"{mailbox}: {exc}", messages.ERROR)
                continue
            result = inbound.mailbox_poll(mailbox=mailbox)
            if result.error:
                self.message_user(request, f"{mailbox}: {result.error}", messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"{mailbox}: {result.fetched} read, {result.logged} logged, {result.duplicates} "
                    f"already logged, {result.unmatched} unmatched, {result.skipped} skipped.",
                    messages.SUCCESS,
                )


class ComposeForm(forms.Form):
    to = forms.ChoiceField(label="To")
    template = forms.ModelChoiceField(
        queryset=EmailTemplate.objects.filter(is_active=True), required=False, help_text="Optional."
    )
    subject = forms.CharField(max_length=255, required=False, help_text="Empty: the template's.")
    body = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 12, "cols": 80}),
        required=False,
        max_length=200_000,
        help_text="Plain text. Empty: the template's.",
    )

    def __init__(self, *args, recipients, invitation=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.recipients = {_key(r): r for r in recipients}
        self.fields["to"].choices = [
            (key, f"{r} <{r.email}>" + (" (opted out)" if getattr(r, "email_opt_out", False) else ""))
            for key, r in self.recipients.items()
        ]
        if invitation:
            del self.fields["template"], self.fields["subject"]


def _key(recipient) -> str:
    return f"{'contact' if isinstance(recipient, Contact) else 'lead'}:{recipient.pk}"


@admin.register(EmailMessage)
class EmailMessageAdmin(RecordLinkMixin, ServiceModelAdmin):
    """The emails received and sent on the records the user sees; sent from a record's page."""

    list_display = ("subject", "direction", "from_address", "to_addresses", "sent_at", "status")
    list_filter = ("direction",)
    list_select_related = ("outgoing",)
    search_fields = ("subject", "from_address", "message_id")
    show_full_result_count = False
    readonly_fields = (
        "direction",
        "message_id",
        "mailbox",
        "record_link",
        "from_address",
        "to_addresses",
        "cc_addresses",
        "subject",
        "in_reply_to",
        "references",
        "sent_at",
        "skipped",
        "activities_shown",
        "created_at",
    )
    fields = readonly_fields

    def get_queryset(self, request):
        return selectors.email_message_visible_to(request.user)

    def has_add_permission(self, request):
        return False  # from a record's page (compose/), where the record is known

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # the activities it is logged as are deleted from their records

    @admin.display(description="status")
    def status(self, obj):
        return obj.outgoing.get_status_display() if obj.outgoing_id else "received"

    @admin.display(description="logged as")
    def activities_shown(self, obj):
        return ", ".join(str(a) for a in obj.activities.all()) or "—"

    def get_urls(self):
        return [
            path(
                "compose/",
                self.admin_site.admin_view(self.compose_view),
                name="activities_emailmessage_compose",
            ),
            *super().get_urls(),
        ]

    def compose_view(self, request):
        """GET: the form for ``?record_type=&record_id=`` (``&invitation=1`` for a meeting); POST: send."""
        if not request.user.has_perm("activities.add_emailmessage"):
            raise PermissionDenied
        params = request.POST if request.method == "POST" else request.GET
        invitation = params.get("invitation") == "1"
        try:
            record = selectors.record_of(
                user=request.user,
                record_type=params.get("record_type", ""),
                record_id=params.get("record_id", ""),
            )
            if invitation and not (
                isinstance(record, Activity) and record.activity_type == ActivityType.MEETING
            ):
                raise ValidationError("Only a meeting is sent as an invitation.")
            if not invitation and isinstance(record, Activity):
                raise ValidationError("Email is sent from a lead, a deal, a contact or an account.")
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:activities_emailmessage_changelist"))
        record_type = record_type_of(record)
        back = _back(request, record_admin_url(record_type, record.pk))
        recipients = [r for r in outbound.email_recipients(record) if r.email]
        form = ComposeForm(request.POST or None, recipients=recipients, invitation=invitation)
        if request.method == "POST" and form.is_valid():
            to = form.recipients[form.cleaned_data["to"]]
            try:
                with transaction.atomic():
                    if invitation:
                        outbound.activity_invitation_send(
                            user=request.user, activity=record, to=to, body=form.cleaned_data["body"]
                        )
                    else:
                        outbound.email_compose(
                            user=request.user,
                            record=record,
                            to=to,
                            template=form.cleaned_data["template"],
                            subject=form.cleaned_data["subject"],
                            body=form.cleaned_data["body"],
                        )
            except ValidationError as exc:
                for field, errors in exc.message_dict.items() if hasattr(exc, "error_dict") else []:
                    form.add_error(field if field in form.fields else None, errors)
                if not hasattr(exc, "error_dict"):
                    form.add_error(None, exc.messages)
            else:
                self.message_user(request, f"The email to {to.email} is on its way.", messages.SUCCESS)
                return HttpResponseRedirect(back)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Send {'an invitation to' if invitation else 'an email about'} {record}",
            "form": form,
            "record": record,
            "record_type": record_type,
            "invitation": invitation,
            "back": back,
            "no_recipient": not recipients,
        }
        return TemplateResponse(request, "admin/activities/email_compose.html", context)


def send_email_actions(*, request, obj) -> list[RecordAction]:
    """ "Send email" on a lead's, deal's, contact's or account's page; "Send invitation" on a meeting's."""
    if not request.user.has_perm("activities.add_emailmessage"):
        return []
    record_type = record_type_of(obj)
    compose = reverse("admin:activities_emailmessage_compose")
    back = record_admin_url(record_type, obj.pk)
    if isinstance(obj, Activity):
        if obj.activity_type != ActivityType.MEETING:
            return []
        query = {"record_type": record_type, "record_id": obj.pk, "invitation": "1", "next": back}
        return [RecordAction("Send invitation", f"{compose}?{urlencode(query)}")]
    query = {"record_type": record_type, "record_id": obj.pk, "next": back}
    return [RecordAction("Send email", f"{compose}?{urlencode(query)}")]


for _label in ("crm.lead", "sales.opportunity", "crm.contact", "crm.account", "activities.activity"):
    register_record_actions(_label, send_email_actions)
