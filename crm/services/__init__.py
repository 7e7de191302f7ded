"""Writes for the crm app. Every entry point (admin, API, import, commands) goes through these.

Conventions shared with sales and activities services:

- ``data`` maps model field names (``stage``, ``tags``) to values (a Stage, a list of Tags); whatever
  the caller validated for type, the service validates the business rules with ``full_clean()``.
- Bad input raises ``django.core.exceptions.ValidationError`` keyed by model field. A request that
  conflicts with a record's state (moving a closed lead, deleting a stage still in use) raises it with
  one of ``CONFLICT_CODES``, which the API answers with 409 instead of 400.
- Transitions (move stage, win, lose, convert) lock the row with ``select_for_update()`` and check
  the transition from the locked row's state.

One module per concern: ``records`` (save, version, delete, conflict codes), ``access`` (the change
rule and owner assignment), ``pipeline_records`` (stage moves, lost, reopen shared by leads and deals),
``configuration`` (pipelines, stages, tags, lost reasons, scoring rules), ``accounts`` (accounts and
contacts), ``leads``, ``teams``. Import from ``crm.services``; the package exports every name.
"""

from .access import (
    CHANGE_REFUSED,
    OWNER_CHANGE_REFUSED,
    OWNER_OUTSIDE_TEAM,
    _is_system,
    _Unowned,
    _unseen,
    owner_change_problem,
    owner_ensure_allowed,
    record_ensure_changeable,
    related_ensure_changeable,
    related_ensure_visible,
    with_default_owner,
)
from .accounts import account_create, account_update, contact_create, contact_update
from .api_keys import api_key_create, api_key_hash, api_key_revoke, api_key_update
from .configuration import (
    lost_reason_create,
    lost_reason_update,
    pipeline_create,
    pipeline_delete,
    pipeline_delete_problems,
    pipeline_save,
    pipeline_set_default,
    pipeline_update,
    scoring_rule_create,
    scoring_rule_update,
    stage_create,
    stage_update,
    tag_create,
    tag_update,
)
from .leads import (
    _lead_enter_closed_stage,
    lead_create,
    lead_mark_lost,
    lead_move_stage,
    lead_reopen,
    lead_update,
)
from .pipeline_records import (
    lost_reason_ensure_active,
    lost_reason_ensure_given,
    pipeline_record_prepare_update,
    pipeline_record_save,
    record_ensure_open,
    record_ensure_stage_in_pipeline,
    record_lost_data,
    record_reopen_stage,
    stage_change_record,
)
from .records import (
    CLOSED,
    CONFLICT_CODES,
    DEFAULT_PIPELINE,
    NO_WON_STAGE,
    NOT_REOPENABLE,
    PROTECTED,
    M,
    _m2m_change_reason,
    acting_user,
    name_lock,
    protected_message,
    record_assign,
    record_delete,
    record_lock,
    record_save,
    record_stored_version,
    record_version,
    rekey_errors,
)
from .teams import (
    TEAM_MANAGEMENT_REFUSED,
    sales_team_create,
    sales_team_delete,
    sales_team_ensure_manageable,
    sales_team_update,
)

__all__ = [
    "CHANGE_REFUSED",
    "CLOSED",
    "CONFLICT_CODES",
    "DEFAULT_PIPELINE",
    "NOT_REOPENABLE",
    "NO_WON_STAGE",
    "OWNER_CHANGE_REFUSED",
    "OWNER_OUTSIDE_TEAM",
    "PROTECTED",
    "TEAM_MANAGEMENT_REFUSED",
    "M",
    "_Unowned",
    "_is_system",
    "_lead_enter_closed_stage",
    "_m2m_change_reason",
    "_unseen",
    "account_create",
    "account_update",
    "acting_user",
    "api_key_create",
    "api_key_hash",
    "api_key_revoke",
    "api_key_update",
    "contact_create",
    "contact_update",
    "lead_create",
    "lead_mark_lost",
    "lead_move_stage",
    "lead_reopen",
    "lead_update",
    "lost_reason_create",
    "lost_reason_ensure_active",
    "lost_reason_ensure_given",
    "lost_reason_update",
    "name_lock",
    "owner_change_problem",
    "owner_ensure_allowed",
    "pipeline_create",
    "pipeline_delete",
    "pipeline_delete_problems",
    "pipeline_record_prepare_update",
    "pipeline_record_save",
    "pipeline_save",
    "pipeline_set_default",
    "pipeline_update",
    "protected_message",
    "record_assign",
    "record_delete",
    "record_ensure_changeable",
    "record_ensure_open",
    "record_ensure_stage_in_pipeline",
    "record_lock",
    "record_lost_data",
    "record_reopen_stage",
    "record_save",
    "record_stored_version",
    "record_version",
    "rekey_errors",
    "related_ensure_changeable",
    "related_ensure_visible",
    "sales_team_create",
    "sales_team_delete",
    "sales_team_ensure_manageable",
    "sales_team_update",
    "scoring_rule_create",
    "scoring_rule_update",
    "stage_change_record",
    "stage_create",
    "stage_update",
    "tag_create",
    "tag_update",
    "with_default_owner",
]
