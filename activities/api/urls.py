"""The activities app's API routes, gathered under /api/v1/crm/ by crm_project.api.build_router()."""

from rest_framework.routers import SimpleRouter

from activities.api import calendar, mail, records, views
from activities.service import api as service_api
from activities.service import api_kb

router = SimpleRouter()
router.register("activities", views.ActivityViewSet, basename="activity")
router.register("activity-templates", views.ActivityTemplateViewSet, basename="activity-template")
router.register("files", records.AttachmentViewSet, basename="file")
router.register("notes", records.NoteViewSet, basename="note")
router.register("calendar/feed", calendar.CalendarFeedViewSet, basename="calendar-feed-settings")
router.register("mailboxes", mail.MailboxViewSet, basename="mailbox")
router.register("emails", mail.EmailMessageViewSet, basename="email")
router.register("tickets", service_api.TicketViewSet, basename="ticket")
router.register("working-calendars", service_api.WorkingCalendarViewSet, basename="working-calendar")
router.register("sla-policies", service_api.SlaPolicyViewSet, basename="sla-policy")
router.register("kb/articles", api_kb.ArticleViewSet, basename="kb-article")
router.register("kb/categories", api_kb.ArticleCategoryViewSet, basename="kb-category")
