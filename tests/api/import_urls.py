"""A test-only API: minimal viewsets mixing in ImportExportViewSetMixin, as the real ones will."""

import django_filters
from django.urls import include, path
from rest_framework import routers, serializers, viewsets

from crm.api.import_export import ImportExportViewSetMixin
from crm.models import Account, Contact, Lead


class LeadFilter(django_filters.FilterSet):
    class Meta:
        model = Lead
        fields = ["status", "priority"]


class AccountFilter(django_filters.FilterSet):
    class Meta:
        model = Account
        fields = ["account_type", "industry"]


def viewset(model, kind, filterset=None):
    serializer = type(
        f"{model.__name__}Serializer",
        (serializers.ModelSerializer,),
        {"Meta": type("Meta", (), {"model": model, "fields": ["id"]})},
    )
    attrs = {
        "queryset": model.objects.all(),
        "serializer_class": serializer,
        "import_export_kind": kind,
        "search_fields": ["email"] if model is not Account else ["name"],
    }
    if filterset:
        attrs["filterset_class"] = filterset
    return type(f"{model.__name__}ViewSet", (ImportExportViewSetMixin, viewsets.ModelViewSet), attrs)


router = routers.DefaultRouter()
router.register("leads", viewset(Lead, "leads", LeadFilter), basename="lead")
router.register("contacts", viewset(Contact, "contacts"), basename="contact")
router.register("accounts", viewset(Account, "accounts", AccountFilter), basename="account")

urlpatterns = [path("api/v1/crm/", include(router.urls))]
