"""The crm app's API routes, gathered under /api/v1/crm/ by crm_project.api.build_router()."""

from rest_framework.routers import SimpleRouter

from crm.api import keys, next_actions, views
from crm.automation import api as automation
from crm.consent import api as consent
from crm.jobs import api as jobs
from crm.marketing import api as marketing
from crm.messaging import api as messaging
from crm.notifications import api as notifications
from crm.privacy import api as privacy
from crm.reports import api as reports
from crm.saved_views import api as saved_views
from crm.sequences import api as sequences
from crm.webhooks import api as webhooks

router = SimpleRouter()
router.register("leads", views.LeadViewSet, basename="lead")
router.register("accounts", views.AccountViewSet, basename="account")
router.register("contacts", views.ContactViewSet, basename="contact")
router.register("pipelines", views.PipelineViewSet, basename="pipeline")
router.register("stages", views.StageViewSet, basename="stage")
router.register("tags", views.TagViewSet, basename="tag")
router.register("lost-reasons", views.LostReasonViewSet, basename="lost-reason")
# Before "webhooks": "webhooks/deliveries/5/" is a delivery, not a subscription's sub-route.
router.register("webhooks/deliveries", webhooks.WebhookDeliveryViewSet, basename="webhook-delivery")
router.register("webhooks", webhooks.WebhookSubscriptionViewSet, basename="webhook")
router.register("jobs", jobs.JobViewSet, basename="job")
# Before "automations": "automations/runs/5/" is a run, not a rule's sub-route.
router.register("automations/runs", automation.AutomationRunViewSet, basename="automation-run")
router.register("automations", automation.AutomationRuleViewSet, basename="automation")
router.register("notifications", notifications.NotificationViewSet, basename="notification")
router.register(
    "notification-preferences",
    notifications.NotificationPreferenceViewSet,
    basename="notification-preference",
)
router.register("email-templates", messaging.EmailTemplateViewSet, basename="email-template")
router.register("sent-emails", messaging.OutgoingEmailViewSet, basename="sent-email")
router.register("sequences", sequences.SequenceViewSet, basename="sequence")
router.register("sequence-enrollments", sequences.SequenceEnrollmentViewSet, basename="sequence-enrollment")
router.register("api-keys", keys.ApiKeyViewSet, basename="api-key")
router.register("segments", marketing.SegmentViewSet, basename="segment")
router.register("campaigns", marketing.CampaignViewSet, basename="campaign")
router.register("consent-purposes", consent.ConsentPurposeViewSet, basename="consent-purpose")
router.register("consents", consent.ConsentRecordViewSet, basename="consent")
router.register("privacy", privacy.PrivacyRequestViewSet, basename="privacy-request")
# Before "reports": "reports/builder/" and "reports/saved/" are not standard reports' keys.
router.register("reports/builder", reports.ReportBuilderViewSet, basename="report-builder")
router.register("reports/saved", reports.SavedReportViewSet, basename="saved-report")
router.register("reports", reports.ReportViewSet, basename="report")
router.register("next-actions", next_actions.NextActionsMineViewSet, basename="next-action")
router.register("saved-views", saved_views.SavedViewViewSet, basename="saved-view")
