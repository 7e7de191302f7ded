"""The error responses every API operation can give, documented once for the whole schema.

Views document what is special about them (their 200, a 409 that names its conflict, the 412 of
If-Match). The answers that any operation can give come from the project's plumbing instead: bad
input (400), no credentials (401), no permission (403), no such record or page (404), a body that
is not JSON (415) and the throttles (429); writes can also lose a race (409). The postprocessing
hook below adds those to every operation that lacks them, with the bodies the API really sends,
so a client (or a fuzzer holding the API to its schema) finds every answer documented.
"""

from typing import Any

from rest_framework import status

SCHEMAS = "#/components/schemas/"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"{SCHEMAS}{name}"}


# {field: [messages]}; a list field's or nested object's errors nest under its name ({"ids": {"0":
# [messages]}}, {"items": [{}, {"name": [messages]}]}); a body that is not valid JSON answers
# {"detail": message}.
VALIDATION_ERROR = {
    "type": "object",
    "description": "Bad input: {field: [messages]}; messages about no single field are under "
    "non_field_errors; errors of a list's items or a nested object's fields nest under its name; "
    "a body that cannot be parsed answers {detail: message}.",
    "additionalProperties": {
        "anyOf": [
            {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "object"}]}},
            {"type": "object"},
            {"type": "string"},
        ]
    },
    "example": {"stage_id": ['Invalid pk "999" - object does not exist.']},
}
ERROR_DETAIL = {
    "type": "object",
    "properties": {"detail": {"type": "string", "description": "What went wrong, in words."}},
    "required": ["detail"],
}
CONFLICT = {
    "type": "object",
    "properties": {
        "detail": {"type": "string", "description": "What conflicts, in words a person can act on."},
        "code": {
            "type": "string",
            "description": "closed, protected, default_pipeline, no_won_stage or conflict.",
        },
    },
    "required": ["detail", "code"],
}
COMPONENTS = {"ValidationError": VALIDATION_ERROR, "Detail": ERROR_DETAIL, "Conflict": CONFLICT}

BAD_REQUEST_DESCRIPTION = "Bad input: nothing was changed."
DESCRIPTIONS = {
    status.HTTP_400_BAD_REQUEST: (BAD_REQUEST_DESCRIPTION, "ValidationError"),
    status.HTTP_401_UNAUTHORIZED: ("No credentials, or credentials that are not valid.", "Detail"),
    status.HTTP_403_FORBIDDEN: ("Authenticated, but not allowed to do this.", "Detail"),
    status.HTTP_404_NOT_FOUND: ("No such record (or none you may see), or no such page.", "Detail"),
    status.HTTP_409_CONFLICT: (
        "The change conflicts with the current data (another request changed it at the same time).",
        "Conflict",
    ),
    status.HTTP_415_UNSUPPORTED_MEDIA_TYPE: (
        "The body is not in a media type this operation reads.",
        "Detail",
    ),
    status.HTTP_429_TOO_MANY_REQUESTS: (
        "Too many requests: wait the seconds in the Retry-After header.",
        "Detail",
    ),
}
UNSAFE = {"post", "put", "patch", "delete"}
METHODS = UNSAFE | {"get", "head", "options"}


def _response(code: int) -> dict[str, Any]:
    description, component = DESCRIPTIONS[code]
    return {
        "description": description,
        "content": {"application/json": {"schema": ref(component)}},
    }


def standard_codes(method: str, operation: dict[str, Any]) -> list[int]:
    """The error statuses the project's plumbing can give for this operation."""
    codes = [status.HTTP_400_BAD_REQUEST, status.HTTP_404_NOT_FOUND, status.HTTP_429_TOO_MANY_REQUESTS]
    if operation.get("security"):  # the token endpoint has none: it is how credentials are got
        codes += [status.HTTP_401_UNAUTHORIZED, status.HTTP_403_FORBIDDEN]
    if method in UNSAFE:
        codes.append(status.HTTP_409_CONFLICT)
    if "requestBody" in operation:
        codes.append(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE)
    return codes


def add_error_responses(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: the standard error responses on every operation."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in COMPONENTS.items():
        schemas.setdefault(name, schema)
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in METHODS:
                continue
            responses = operation.setdefault("responses", {})
            for code in standard_codes(method, operation):
                responses.setdefault(str(code), _response(code))
    return result
