"""The knowledge base: who reads and writes articles, the search ranked by relevance, the suggestions
for a ticket, and the writes (publishing keeps a version of every published text).

Search on PostgreSQL is full-text over the stored ``Article.search_vector`` (the title and keywords
weigh A, the body B; a trigger keeps it, migration 0021), found through its GIN index and ranked with
``ts_rank``. Only the first ``SEARCH_CANDIDATES`` matches are ranked: ranking reads each match's vector,
so a word found in every article would cost a read of the whole table; past that many, a search lists
the most relevant of those, and its count says at most that many. Other databases match the words
with ``icontains`` and rank by where they were found (title and keywords 3, body 1 a word).
"""

import operator
import re
from collections.abc import Mapping
from functools import reduce
from typing import Any

from django.conf import settings
from django.contrib.postgres.search import SearchQuery, SearchRank
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.models import Case, F, IntegerField, Q, QuerySet, Value, When
from django.urls import reverse
from django.utils import timezone

from activities.service.models import Article, ArticleCategory, ArticleStatus, ArticleVersion
from crm.actors import Actor, actor_ensure_given, person
from crm.services import record_lock, record_save

SEARCH_CONFIG = "english"
GIN_INDEX_NAME = "activities_article_search_gin"
MAX_QUERY_LENGTH = 200
# The matches ranked by a full-text search (see the module's docstring).
SEARCH_CANDIDATES = 1000
SUGGESTIONS = 5
WORD = re.compile(r"\w{3,}")
# Words too common in a ticket's subject to say what it is about.
STOP_WORDS = frozenset(
    {
        "the",
        "and",
        "for",
        "with",
        "not",
        "but",
        "you",
        "your",
        "our",
        "are",
        "was",
        "were",
        "can",
        "cannot",
        "how",
        "why",
        "what",
        "when",
        "who",
        "this",
        "that",
        "from",
        "have",
        "has",
        "had",
        "does",
        "did",
        "please",
        "help",
        "issue",
        "problem",
        "question",
    }
)


def _full_text() -> bool:
    return connection.vendor == "postgresql"


# --- who reads and writes ---------------------------------------------------------------------------


def article_editor(user: Actor) -> bool:
    """Editors (CRM Admins, support managers: the change permission) read drafts and archives too."""
    return bool(
        user and user.is_authenticated and user.is_active and user.has_perm("activities.change_article")
    )


def article_visible_to(user: Actor) -> QuerySet[Article]:
    # The stored words are for the search's WHERE and ranking only: a page need not carry them.
    articles = Article.objects.defer("search_vector")
    if not user.is_authenticated or not user.is_active or not user.has_perm("activities.view_article"):
        return articles.none()
    if article_editor(user):
        return articles
    return articles.filter(status=ArticleStatus.PUBLISHED)


def article_list(*, user: Actor, filters: Mapping[str, Any] | None = None) -> QuerySet[Article]:
    """The articles ``user`` reads, with ``q`` (a search, ranked) and ``status``/``category`` filters."""
    filters = filters or {}
    articles = article_visible_to(user).select_related("category", "author")
    if filters.get("status"):
        articles = articles.filter(status=filters["status"])
    if filters.get("category"):
        articles = articles.filter(category=filters["category"])
    query = (filters.get("q") or "").strip()
    if query:
        return article_search(articles, query)
    return articles


def _words(text: str) -> list[str]:
    return list(dict.fromkeys(w.lower() for w in WORD.findall(text) if w.lower() not in STOP_WORDS))[:12]


def article_search(articles: QuerySet[Article], query: str, *, any_word: bool = False) -> QuerySet[Article]:
    """``articles`` matching ``query``, most relevant first, each with its ``rank``.

    A query is web-search syntax on PostgreSQL ("quoted phrase", -excluded, or): every word must be
    found unless ``any_word`` (the suggestions from a ticket's subject match on any of its words)."""
    query = query.strip()[:MAX_QUERY_LENGTH]
    if _full_text():
        if any_word:
            words = _words(query)
            if not words:
                return articles.none()
            search = reduce(operator.or_, (SearchQuery(w, config=SEARCH_CONFIG) for w in words))
        else:
            search = SearchQuery(query, search_type="websearch", config=SEARCH_CONFIG)
        # The GIN index finds the matches; the ranking reads the stored vectors of at most
        # SEARCH_CANDIDATES of them, whatever the number of matches.
        candidates = articles.filter(search_vector=search).order_by().values("pk")[:SEARCH_CANDIDATES]
        return (
            articles.filter(pk__in=candidates)
            .annotate(rank=SearchRank(F("search_vector"), search))
            .order_by("-rank", "-published_at", "pk")
        )
    words = _words(query) if any_word else [w.lower() for w in WORD.findall(query)][:12]
    if not words:
        return articles.none()
    found = [Q(title__icontains=w) | Q(keywords__icontains=w) | Q(body__icontains=w) for w in words]
    condition = reduce(operator.or_ if any_word else operator.and_, found)
    scores = [
        Case(When(Q(title__icontains=w) | Q(keywords__icontains=w), then=Value(3)), default=Value(0))
        + Case(When(body__icontains=w, then=Value(1)), default=Value(0))
        for w in words
    ]
    rank = reduce(operator.add, scores, Value(0, output_field=IntegerField()))
    return (
        articles.filter(condition)
        .annotate(rank=rank)
        .order_by(F("rank").desc(), F("published_at").desc(nulls_last=True), "pk")
    )


def article_suggestions(*, user: Actor, subject: str, limit: int = SUGGESTIONS) -> list[Article]:
    """Published articles that may answer a ticket about ``subject`` (one query)."""
    published = article_visible_to(user).filter(status=ArticleStatus.PUBLISHED)
    return list(article_search(published, subject, any_word=True)[:limit])


def article_public_url(article: Article) -> str:
    return settings.CRM_BASE_URL.rstrip("/") + reverse("kb-article", args=[article.pk])


def article_links_text(articles: list[Article]) -> str:
    """What a reply gets for the articles linked in it: a line per article, its title and public link."""
    return "\n".join(f"{article.title}: {article_public_url(article)}" for article in articles)


def articles_linkable(*, user: Actor, ids) -> list[Article]:
    """The published articles of ``ids`` that ``user`` reads, in the order given; an unknown, unseen or
    unpublished id is refused (400) rather than dropped from the reply."""
    ids = list(dict.fromkeys(ids))
    found = {a.pk: a for a in article_visible_to(user).filter(pk__in=ids, status=ArticleStatus.PUBLISHED)}
    missing = [str(pk) for pk in ids if pk not in found]
    if missing:
        raise ValidationError({"article_ids": f"No published article with the id(s) {', '.join(missing)}."})
    return [found[pk] for pk in ids]


# --- writes ---------------------------------------------------------------------------------------------


def _ensure_may(user: Actor, action: str, model=Article) -> None:
    actor_ensure_given(user)
    opts = model._meta
    if not user.has_perm(f"activities.{action}_{opts.model_name}"):
        raise PermissionDenied(f"You may not {action} {opts.verbose_name_plural}.")


def _version_add(*, article: Article, user: Actor, now) -> None:
    article.version += 1
    article.published_at = now
    ArticleVersion.objects.create(
        article=article,
        number=article.version,
        title=article.title,
        body=article.body,
        keywords=article.keywords,
        category_name=article.category.name if article.category_id else "",
        published_by=person(user),
        published_at=now,
    )


PUBLISHED_TEXT = ("title", "body", "keywords", "category")


@transaction.atomic
def article_create(*, user: Actor, data: Mapping[str, Any]) -> Article:
    """A new article, a draft unless ``status`` says published (then its version 1 is kept)."""
    _ensure_may(user, "add")
    data = dict(data)
    status = data.pop("status", ArticleStatus.DRAFT)
    article = record_save(instance=Article(author=person(user)), data=data, user=user, publish=False)
    if status != ArticleStatus.DRAFT:
        return article_set_status(article=article, user=user, status=status)
    return article


@transaction.atomic
def article_update(*, article: Article, user: Actor, data: Mapping[str, Any]) -> Article:
    """Change an article; an edit of the published text is kept as a new version. ``status`` in
    ``data`` is a transition (article_set_status)."""
    _ensure_may(user, "change")
    article = record_lock(article)
    data = dict(data)
    status = data.pop("status", article.status)
    changed = any(
        getattr(article, f"{name}_id" if name == "category" else name)
        != (getattr(data[name], "pk", data[name]) if name == "category" else data[name])
        for name in PUBLISHED_TEXT
        if name in data
    )
    article = record_save(instance=article, data=data, user=user, publish=False)
    if status != article.status:
        return article_set_status(article=article, user=user, status=status)
    if changed and article.status == ArticleStatus.PUBLISHED:
        _version_add(article=article, user=user, now=timezone.now())
        article = record_save(instance=article, user=user, publish=False)
    return article


@transaction.atomic
def article_set_status(*, article: Article, user: Actor, status: str) -> Article:
    """Publish (a new version when its text differs from the last one kept), archive, or return to
    draft an article that was never published (one that was is archived instead: its link is out)."""
    _ensure_may(user, "change")
    if status not in ArticleStatus.values:
        raise ValidationError({"status": f"“{status}” is not a status of an article."})
    article = record_lock(article)
    if status == article.status:
        return article
    if status == ArticleStatus.DRAFT and article.version:
        raise ValidationError(
            {"status": "A published article cannot go back to draft: archive it, or edit it published."}
        )
    if status == ArticleStatus.PUBLISHED:
        last = article.versions.order_by("-number").first()
        same = last is not None and (last.title, last.body, last.keywords) == (
            article.title,
            article.body,
            article.keywords,
        )
        if not same:
            _version_add(article=article, user=user, now=timezone.now())
        elif article.published_at is None:
            article.published_at = last.published_at
    article.status = status
    return record_save(instance=article, user=user, publish=False)


@transaction.atomic
def article_delete(*, article: Article, user: Actor) -> None:
    _ensure_may(user, "delete")
    article.delete()


@transaction.atomic
def article_category_save(
    *, user: Actor, category: ArticleCategory | None, data: Mapping[str, Any]
) -> ArticleCategory:
    _ensure_may(user, "change" if category else "add", ArticleCategory)
    return record_save(instance=category or ArticleCategory(), data=data, user=user, publish=False)


@transaction.atomic
def article_category_delete(*, user: Actor, category: ArticleCategory) -> None:
    _ensure_may(user, "delete", ArticleCategory)
    if category.articles.exists():
        raise ValidationError("Articles are filed in this category: move them first.")
    category.delete()


def article_category_list(*, user: Actor, filters=None) -> QuerySet[ArticleCategory]:
    if not user.is_authenticated or not user.has_perm("activities.view_articlecategory"):
        return ArticleCategory.objects.none()
    return ArticleCategory.objects.all()
