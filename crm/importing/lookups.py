"""The small tables an import refers to by name, loaded once per import into dicts."""

from collections import defaultdict
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models.functions import Lower, Upper

from crm.models import Account, LostReason, Pipeline, Stage, Tag
from crm.models.pipeline import first_open_stage


@dataclass(frozen=True, slots=True)
class StageInfo:
    id: int
    pipeline_id: int
    name: str
    sequence: int
    probability: int
    is_won: bool
    is_lost: bool


@dataclass(frozen=True, slots=True)
class PipelineInfo:
    id: int
    name: str
    lost_reason_required: bool = False


def chunk_size() -> int:
    """How many values one ``IN (...)`` may carry on this database."""
    limit = connection.features.max_query_params
    return min(limit - 10, 2000) if limit else 5000


def chunked(values: list, size: int | None = None):
    size = size or chunk_size()
    for start in range(0, len(values), size):
        yield values[start : start + size]


class PipelineCache:
    """Pipelines and stages in memory; a source for ``crm.models.lead.pipeline_defaults``."""

    def __init__(self):
        self.pipelines: dict[int, PipelineInfo] = {}
        self.pipeline_ids_by_name: dict[str, list[int]] = defaultdict(list)
        self.default_id: int | None = None
        pipelines = Pipeline.objects.values_list("id", "name", "is_default", "lost_reason_required")
        for pk, name, is_default, lost_reason_required in pipelines:
            self.pipelines[pk] = PipelineInfo(pk, name, lost_reason_required)
            self.pipeline_ids_by_name[name.lower()].append(pk)
            if is_default:
                self.default_id = pk
        self.stages: dict[int, StageInfo] = {}
        self.stage_by_name: dict[tuple[int, str], StageInfo] = {}
        by_pipeline: dict[int, list[StageInfo]] = defaultdict(list)
        fields = ("id", "pipeline_id", "name", "sequence", "probability", "is_won", "is_lost")
        for row in Stage.objects.order_by("pipeline_id", "sequence", "id").values_list(*fields):
            stage = StageInfo(*row)
            self.stages[stage.id] = stage
            self.stage_by_name[stage.pipeline_id, stage.name.lower()] = stage
            by_pipeline[stage.pipeline_id].append(stage)
        self.first_stages = {pk: first_open_stage(by_pipeline.get(pk, ())) for pk in self.pipelines}
        # Pipeline.lost_stage: where a lost record goes.
        self.lost_stages = {
            pk: next((stage for stage in by_pipeline.get(pk, ()) if stage.is_lost), None)
            for pk in self.pipelines
        }

    # The source interface of pipeline_defaults():
    def stage(self, stage_id: int) -> StageInfo | None:
        return self.stages.get(stage_id)

    def default_pipeline(self) -> PipelineInfo | None:
        return self.pipelines.get(self.default_id) if self.default_id is not None else None

    def first_stage(self, pipeline_id: int) -> StageInfo | None:
        return self.first_stages.get(pipeline_id)


def ids_by_lower_name(queryset, field: str) -> dict[str, list[int]]:
    found: dict[str, list[int]] = defaultdict(list)
    for pk, name in queryset.values_list("id", field):
        found[name.lower()].append(pk)
    return found


def user_ids_by_username() -> dict[str, list[int]]:
    User = get_user_model()
    return ids_by_lower_name(User.objects.all(), User.USERNAME_FIELD)


def lost_reason_ids_by_name() -> dict[str, list[int]]:
    return ids_by_lower_name(LostReason.objects.all(), "name")


def lost_reasons_by_id() -> dict[int, tuple[str, bool]]:
    """Every lost reason's (name, is_active), by id: the lost-reason rules read them per row."""
    return {
        pk: (name, active) for pk, name, active in LostReason.objects.values_list("id", "name", "is_active")
    }


def tags_by_name() -> dict[str, int]:
    return {name.lower(): pk for pk, name in Tag.objects.values_list("id", "name")}


def account_ids_by_name(lower_names) -> dict[str, list[int]]:
    """Accounts named (in any case) one of ``lower_names``, through the upper(name) index."""
    found: dict[str, list[int]] = defaultdict(list)
    keys = sorted({name.upper() for name in lower_names})
    for chunk in chunked(keys):
        rows = Account.objects.annotate(_key=Upper("name")).filter(_key__in=chunk).values_list("id", "name")
        for pk, name in rows:
            found[name.lower()].append(pk)
    return found


def key_function(name: str):
    """The SQL function whose index serves a case-insensitive natural key."""
    return Upper if name == "upper" else Lower
