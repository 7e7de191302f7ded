"""The knowledge base's API: ``kb/articles/`` (``?q=`` searches, most relevant first; its versions) and
``kb/categories/``. Conventions: crm.api.viewsets (reads through the selectors, writes through the
services)."""

import django_filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from activities.service import kb
from activities.service.models import Article, ArticleCategory, ArticleStatus, ArticleVersion
from crm.api.serializers import TIMESTAMPS, label, related_id
from crm.api.viewsets import NOT_FOUND, ServiceModelViewSet, crud_schema
from crm.filters import id_filter, ordering


class ArticleFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(
        method="filter_q",
        max_length=kb.MAX_QUERY_LENGTH,
        label='Search, most relevant first (PostgreSQL: web-search syntax, "a phrase", -word, or)',
    )
    status = django_filters.ChoiceFilter(choices=ArticleStatus.choices)
    category = id_filter(ArticleCategory.objects.all(), label="Category id")
    ordering = ordering("title", "published_at", "updated_at", "created_at")

    def filter_q(self, queryset, name, value):
        return kb.article_search(queryset, value) if value.strip() else queryset


class ArticleSerializer(serializers.ModelSerializer):
    category_id = related_id(ArticleCategory.objects.all(), "category")
    category_name = label("category.name")
    author_id = serializers.IntegerField(read_only=True, allow_null=True)
    public_url = serializers.SerializerMethodField(help_text="The customers' link; null unless published.")
    rank = serializers.SerializerMethodField(help_text="Relevance to ?q= (higher first); null without it.")

    class Meta:
        model = Article
        fields = (
            "id",
            "title",
            "body",
            "keywords",
            "category_id",
            "category_name",
            "status",
            "version",
            "published_at",
            "author_id",
            "public_url",
            "rank",
            *TIMESTAMPS,
        )
        read_only_fields = ("id", "version", "published_at", *TIMESTAMPS)

    def get_public_url(self, obj) -> str | None:
        return kb.article_public_url(obj) if obj.status == ArticleStatus.PUBLISHED else None

    def get_rank(self, obj) -> float | None:
        rank = getattr(obj, "rank", None)
        return None if rank is None else round(float(rank), 6)


class ArticleVersionSerializer(serializers.ModelSerializer):
    published_by_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = ArticleVersion
        fields = ("number", "title", "body", "keywords", "category_name", "published_by_id", "published_at")
        read_only_fields = fields


@extend_schema_view(**crud_schema("article", ArticleSerializer))
class ArticleViewSet(ServiceModelViewSet):
    """Knowledge-base articles: editors (CRM Admins, Sales Managers) read and write every one; the other
    roles read the published ones. ``status`` changes are transitions: publishing keeps a version."""

    serializer_class = ArticleSerializer
    filterset_class = ArticleFilter
    selector = staticmethod(kb.article_list)

    def create_record(self, data):
        return kb.article_create(user=self.request.user, data=data)

    def update_record(self, instance, data):
        return kb.article_update(article=instance, user=self.request.user, data=data)

    def delete_record(self, instance):
        kb.article_delete(article=instance, user=self.request.user)

    @extend_schema(
        summary="An article's published versions",
        description="Every text the article was published with, newest first.",
        responses={200: ArticleVersionSerializer(many=True), 404: NOT_FOUND},
        filters=False,
    )
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def versions(self, request, pk=None):
        article = self.get_object()
        versions = article.versions.order_by("-number")
        return Response(ArticleVersionSerializer(versions, many=True).data)


class ArticleCategorySerializer(serializers.ModelSerializer):
    class Meta:
        model = ArticleCategory
        fields = ("id", "name", "description", *TIMESTAMPS)
        read_only_fields = ("id", *TIMESTAMPS)
        validators: list = []


@extend_schema_view(**crud_schema("article category", ArticleCategorySerializer))
class ArticleCategoryViewSet(ServiceModelViewSet):
    serializer_class = ArticleCategorySerializer
    filterset_class = None
    selector = staticmethod(kb.article_category_list)

    def create_record(self, data):
        return kb.article_category_save(user=self.request.user, category=None, data=data)

    def update_record(self, instance, data):
        return kb.article_category_save(user=self.request.user, category=instance, data=data)

    def delete_record(self, instance):
        kb.article_category_delete(user=self.request.user, category=instance)
