"""What sales registers into crm's automation engine: opportunities as records rules act on, moving
one to a stage, and creating an opportunity from a lead."""

from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.db.models import Q

from crm.automation.actions import _one_id, render, stage_preview, stage_validate
from crm.automation.engine import ActionContext
from crm.automation.registry import register_action, register_model
from crm.models import Pipeline, Stage
from sales import services
from sales.models import Opportunity, OpportunityStatus


def opportunity_move_execute(ctx: ActionContext) -> str:
    stage = Stage.objects.get(pk=ctx.params["stage_id"])
    services.opportunity_move_stage(opportunity=ctx.require_instance(), stage=stage, user=ctx.user)
    return f"Moved to {stage.name}"


def create_opportunity_validate(params: dict, entry) -> dict:
    cleaned: dict = {"convert": bool(params.get("convert", True))}
    if params.get("opportunity_name"):
        cleaned["opportunity_name"] = str(params["opportunity_name"])[:200]
    if params.get("amount") not in (None, ""):
        try:
            cleaned["amount"] = str(Decimal(str(params["amount"])).quantize(Decimal("0.01")))
        except InvalidOperation:
            raise ValidationError("amount: a number, e.g. 1500.00.") from None
    if params.get("pipeline_id") not in (None, ""):
        cleaned["pipeline_id"] = _one_id(params["pipeline_id"], "pipeline_id", Pipeline)
    if params.get("stage_id") not in (None, ""):
        cleaned["stage_id"] = _one_id(params["stage_id"], "stage_id", Stage)
    return cleaned


def create_opportunity_execute(ctx: ActionContext) -> str:
    lead = ctx.require_instance()
    params = ctx.params
    name = render(params["opportunity_name"], ctx) if params.get("opportunity_name") else None
    amount = Decimal(params["amount"]) if params.get("amount") else None
    pipeline = Pipeline.objects.get(pk=params["pipeline_id"]) if params.get("pipeline_id") else None
    stage = Stage.objects.get(pk=params["stage_id"]) if params.get("stage_id") else None
    if params.get("convert", True):
        result = services.lead_convert(
            lead=lead, user=ctx.user, opportunity_name=name, amount=amount, pipeline=pipeline, stage=stage
        )
        return f"Converted the lead into the opportunity #{result.opportunity.pk}"
    data = {
        "name": name or lead.name,
        "lead": lead,
        "amount": amount if amount is not None else lead.expected_revenue,
        "owner": lead.owner,
    }
    if stage is not None:
        data.update(stage=stage, pipeline=stage.pipeline)
    elif pipeline is not None:
        data["pipeline"] = pipeline
    opportunity = services.opportunity_create(user=ctx.user, data=data)
    return f"Created the opportunity #{opportunity.pk}"


def create_opportunity_preview(ctx: ActionContext) -> str:
    lead = ctx.require_instance()
    name = render(ctx.params["opportunity_name"], ctx) if ctx.params.get("opportunity_name") else lead.name
    how = "convert the lead into" if ctx.params.get("convert", True) else "create"
    if ctx.params.get("convert", True) and lead.status != "open":
        return f"Would fail: the lead is {lead.status}, only an open lead converts"
    return f"Would {how} an opportunity “{name}”"


def register() -> None:
    register_model(
        Opportunity,
        event_name="opportunity",
        update=lambda *, instance, user, data: services.opportunity_update(
            opportunity=instance, user=user, data=data
        ),
        open_q=Q(status=OpportunityStatus.OPEN),
        activity_field="last_activity_at",  # kept by the activity services, indexed (quiet since)
    )
    register_action(
        "move_stage",
        label="Move to a stage",
        validate=stage_validate,
        execute=opportunity_move_execute,
        preview=stage_preview,
        models=("sales.Opportunity",),
        example={"stage_id": 2},
    )
    register_action(
        "create_opportunity",
        label="Create an opportunity from the lead (converting it, unless convert is false)",
        validate=create_opportunity_validate,
        execute=create_opportunity_execute,
        preview=create_opportunity_preview,
        models=("crm.Lead",),
        example={"convert": True, "opportunity_name": "{{ record.name }}"},
        params={"convert": True, "opportunity_name": "", "amount": "", "pipeline_id": 1, "stage_id": 1},
    )
