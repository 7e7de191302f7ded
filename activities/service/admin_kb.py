"""The knowledge base and the satisfaction surveys in the admin: articles (search ranked by relevance,
publish and archive actions, the versions kept), their categories, and the surveys' answers."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils.html import format_html

from activities.service import kb
from activities.service.models import (
    Article,
    ArticleCategory,
    ArticleStatus,
    ArticleVersion,
    SatisfactionSurvey,
)
from activities.service.satisfaction import survey_visible_to
from crm.admin.base import ServiceModelAdmin, VisibleRecordsAdminMixin


class ArticleVersionInline(admin.TabularInline):
    """The published texts kept, newest first: read only (a version is never changed)."""

    model = ArticleVersion
    extra = 0
    fields = ("number", "title", "category_name", "published_by", "published_at")
    readonly_fields = fields
    ordering = ("-number",)
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Article)
class ArticleAdmin(VisibleRecordsAdminMixin, ServiceModelAdmin):
    list_display = ("title", "status", "category", "version", "published_at", "updated_at", "public_link")
    list_filter = ("status", "category")
    list_select_related = ("category",)
    search_fields = ("title", "keywords", "body")
    autocomplete_fields = ("category",)
    readonly_fields = ("version", "published_at", "author", "public_link", "created_at", "updated_at")
    fields = (
        "title",
        "status",
        "category",
        "keywords",
        "body",
        "version",
        "published_at",
        "public_link",
        "author",
        "created_at",
        "updated_at",
    )
    inlines = (ArticleVersionInline,)
    actions = ("publish_selected", "archive_selected")
    show_full_result_count = False

    def visible_records(self, user):
        return kb.article_visible_to(user)

    def get_search_results(self, request, queryset, search_term):
        """The changelist's search box is the knowledge base's search: the most relevant first, unless
        a column was clicked to sort by."""
        if not search_term.strip():
            return queryset, False
        ranked = kb.article_search(queryset, search_term)
        if "o" in request.GET:
            ranked = ranked.order_by(*queryset.query.order_by)
        return ranked, False

    @admin.display(description="Public link")
    def public_link(self, obj):
        if obj.pk is None or obj.status != ArticleStatus.PUBLISHED:
            return "—"
        url = kb.article_public_url(obj)
        return format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', url, url)

    def create_record(self, request, data):
        return kb.article_create(user=request.user, data=data)

    def update_record(self, request, obj, data):
        return kb.article_update(article=obj, user=request.user, data=data)

    def delete_record(self, request, obj):
        kb.article_delete(article=obj, user=request.user)

    def _set_status(self, request, queryset, status: str, done: str):
        try:
            with transaction.atomic():
                count = 0
                for article in queryset:
                    kb.article_set_status(article=article, user=request.user, status=status)
                    count += 1
        except (ValidationError, PermissionDenied) as exc:
            message = " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
            self.message_user(request, f"{message} Nothing was changed.", messages.ERROR)
            return
        self.message_user(request, f"{count} article(s) {done}.", messages.SUCCESS)

    @admin.action(description="Publish the selected articles", permissions=["change"])
    def publish_selected(self, request, queryset):
        self._set_status(request, queryset, ArticleStatus.PUBLISHED, "published")

    @admin.action(description="Archive the selected articles", permissions=["change"])
    def archive_selected(self, request, queryset):
        self._set_status(request, queryset, ArticleStatus.ARCHIVED, "archived")


@admin.register(ArticleCategory)
class ArticleCategoryAdmin(ServiceModelAdmin):
    list_display = ("name", "description")
    search_fields = ("name",)
    readonly_fields = ("created_at", "updated_at")

    def create_record(self, request, data):
        return kb.article_category_save(user=request.user, category=None, data=data)

    def update_record(self, request, obj, data):
        return kb.article_category_save(user=request.user, category=obj, data=data)

    def delete_record(self, request, obj):
        kb.article_category_delete(user=request.user, category=obj)


@admin.register(SatisfactionSurvey)
class SatisfactionSurveyAdmin(VisibleRecordsAdminMixin, admin.ModelAdmin):
    """The ratings customers gave: read only (only the customer answers, through the signed link)."""

    list_display = ("ticket", "rating", "agent", "team", "email", "sent_at", "answered_at")
    list_filter = ("rating", "team")
    list_select_related = ("ticket", "agent", "team")
    search_fields = ("ticket__number", "email")
    fields = (
        "ticket",
        "contact",
        "email",
        "agent",
        "team",
        "sent_at",
        "expires_at",
        "rating",
        "comment",
        "answered_at",
    )
    readonly_fields = fields
    show_full_result_count = False

    def visible_records(self, user):
        return survey_visible_to(user)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
