"""Issue 14, "services require the acting user": no service has a default that skips the owner rules."""

import inspect

import pytest

from activities import services as activity_services
from crm import merging
from crm import services as crm_services
from crm.actors import SYSTEM, is_system, person
from crm.models import Lead
from sales import services as sales_services
from sales import services_catalog, services_quotes
from tests.factories import LeadFactory

SERVICE_MODULES = (
    crm_services,
    sales_services,
    services_catalog,
    services_quotes,
    activity_services,
    merging,
)


def _writing_services():
    """Every public function of a services module that runs in its own transaction: a write."""
    for module in SERVICE_MODULES:
        for name, function in vars(module).items():
            if name.startswith("_") or not inspect.isfunction(function):
                continue
            # A package (crm.services) exports the functions of its modules (crm.services.leads).
            own = function.__module__ == module.__name__ or function.__module__.startswith(
                f"{module.__name__}."
            )
            if not own or not hasattr(function, "__wrapped__"):
                continue
            yield f"{module.__name__}.{name}", function


WRITING_SERVICES = dict(_writing_services())


def test_the_services_are_found():
    # The walk below must see the services it guards, or it passes by testing nothing.
    assert {"crm.services.lead_update", "sales.services.lead_convert", "crm.merging.record_merge"} <= set(
        WRITING_SERVICES
    )
    assert len(WRITING_SERVICES) >= 30


@pytest.mark.parametrize("name", sorted(WRITING_SERVICES))
def test_every_writing_service_requires_the_acting_user(name):
    parameters = inspect.signature(WRITING_SERVICES[name]).parameters
    assert "user" in parameters, f"{name} has no acting user"
    user = parameters["user"]
    assert user.kind is inspect.Parameter.KEYWORD_ONLY, f"{name}: user must be keyword-only"
    assert user.default is inspect.Parameter.empty, f"{name}: user must have no default"


def test_a_service_called_without_a_user_is_a_programming_error(db):
    with pytest.raises(TypeError, match="user"):
        crm_services.tag_create(data={"name": "Hot"})


@pytest.mark.parametrize("service", ["create", "update"])
def test_none_is_not_an_acting_user(db, stages, service):
    # None used to mean "the system, allowed everything"; now it is refused before anything is written.
    lead = LeadFactory(stage=stages["New"])
    with pytest.raises(TypeError, match="acting user"):
        if service == "create":
            crm_services.lead_create(user=None, data={"name": "Nobody's"})
        else:
            crm_services.lead_update(lead=lead, user=None, data={"name": "Renamed"})
    assert list(Lead.objects.values_list("name", flat=True)) == [lead.name]


def test_the_system_actor_is_credited_with_nothing_and_owns_nothing(db, stages):
    lead = crm_services.lead_create(user=SYSTEM, data={"name": "From a command"})
    assert lead.owner is None
    assert lead.stage_changes.get().changed_by is None
    assert is_system(SYSTEM) and person(SYSTEM) is None
