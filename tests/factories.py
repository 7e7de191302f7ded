"""factory_boy factories for every CRM model."""

import factory
from django.contrib.auth import get_user_model

from activities.models import Activity
from activities.services import lead_last_activity_refresh

# SalesTeam is imported here only, so tests follow it with one line if it moves between apps.
from crm.models import Account, Contact, Lead, LostReason, Pipeline, SalesTeam, Stage, Tag  # noqa: F401
from sales.models import Opportunity, Product


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    is_staff = True
    password = factory.django.Password("pw-test-123!")


class PipelineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Pipeline

    name = factory.Sequence(lambda n: f"Pipeline {n}")


class StageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Stage

    pipeline = factory.SubFactory(PipelineFactory)
    name = factory.Sequence(lambda n: f"Stage {n}")
    sequence = factory.Sequence(lambda n: n)
    probability = 10


class TagFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tag

    name = factory.Sequence(lambda n: f"Tag {n}")


class LostReasonFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LostReason

    name = factory.Sequence(lambda n: f"Reason {n}")


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account

    name = factory.Sequence(lambda n: f"Account {n}")


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contact

    first_name = factory.Sequence(lambda n: f"First{n}")
    last_name = "Person"
    email = factory.Sequence(lambda n: f"contact{n}@example.com")


class LeadFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Lead

    name = factory.Sequence(lambda n: f"Lead {n}")
    email = factory.Sequence(lambda n: f"lead{n}@example.com")


class OpportunityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Opportunity

    name = factory.Sequence(lambda n: f"Deal {n}")
    amount = 1000


class ActivityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Activity

    subject = factory.Sequence(lambda n: f"Call {n}")
    activity_type = "call"

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        # Written around the services, so its lead's last activity is kept as a bulk writer keeps it.
        activity = super()._create(model_class, *args, **kwargs)
        lead_last_activity_refresh(lead_ids=[activity.lead_id])
        return activity


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    sku = factory.Sequence(lambda n: f"SKU-{n:04d}")
    name = factory.Sequence(lambda n: f"Product {n}")
    unit_price = 100
    tax_rate = 20
