"""The API's request parsers (its own module: DRF loads them while its views module is loading)."""

from typing import Any

from rest_framework import exceptions
from rest_framework.parsers import JSONParser

# No request of this API nests arrays and objects more than a few levels; a deeper body is refused
# before a view walks it (Python's parser itself gives up near 1,000 levels, a RecursionError).
JSON_MAX_DEPTH = 32


def _nests_deeper_than(data: Any, limit: int) -> bool:
    """True when arrays and objects in ``data`` nest more than ``limit`` levels (walked without recursion)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


class DepthLimitedJSONParser(JSONParser):
    """DRF's JSON parser, with a body nested deeper than JSON_MAX_DEPTH levels a 400 that says so."""

    too_deep = f"JSON parse error - the body nests arrays or objects more than {JSON_MAX_DEPTH} levels deep."

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError(self.too_deep) from None
        if _nests_deeper_than(data, JSON_MAX_DEPTH):
            raise exceptions.ParseError(self.too_deep)
        return data
