"""Root URLs: the admin back office, the REST API and its schema and docs, the health check."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerView

from activities.api.calendar import calendar_feed
from activities.service.public import inbound_email, kb_article_public, support_form, survey_public
from crm.consent.public import consent_preferences
from crm.marketing.public import campaign_click, campaign_open, campaign_unsubscribe
from crm_project.api import build_router
from crm_project.auth import TokenView
from crm_project.observability import metrics_view
from crm_project.views import SchemaView, healthz
from sales.public import quote_public

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    # A customer reads a quote and accepts or declines it from the signed link in its email.
    path("q/<str:token>/", quote_public, name="quote-public"),
    # Customer service: the public support form, and raw email posted by a mail forwarder (its secret).
    path("support/", support_form, name="support-form"),
    path("support/articles/<int:pk>/", kb_article_public, name="kb-article"),
    path("support/survey/<str:token>/", survey_public, name="survey-public"),
    path("api/v1/crm/inbound/email/", inbound_email, name="inbound-email"),
    # A campaign email's signed links: unsubscribe (one click, RFC 8058), open and click tracking.
    path("m/u/<str:token>/", campaign_unsubscribe, name="campaign-unsubscribe"),
    path("m/o/<str:token>.gif", campaign_open, name="campaign-open"),
    path("m/c/<str:token>/", campaign_click, name="campaign-click"),
    # ... and the person's preference centre (channels, consents by purpose).
    path("m/p/<str:token>/", consent_preferences, name="consent-preferences"),
    # The calendar feed's secret URL is its credential (no session): served before the API's routes.
    path("api/v1/crm/calendar/feed/<str:token>.ics", calendar_feed, name="calendar-feed"),
    path("api/v1/crm/", include(build_router().urls)),
    path("api/v1/auth/token/", TokenView.as_view(), name="api-token"),
    path("api/schema/", SchemaView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
]

handler400 = "crm_project.views.bad_request"
handler403 = "crm_project.views.permission_denied"
handler404 = "crm_project.views.page_not_found"
handler500 = "crm_project.views.server_error"
