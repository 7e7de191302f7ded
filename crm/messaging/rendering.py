"""The template sandbox: Django's template language over plain values, with a few tags allowed.

A template is checked when it is saved (``template_check``): it must parse, use only the allowed tags
and filters, and name only known placeholders. Rendering (``template_render``) fills it from a
context of plain values (``crm.messaging.context``), autoescaping the HTML part.
"""

import html
import re
from dataclasses import dataclass

import nh3
from django.core.exceptions import ValidationError
from django.template import Context, Engine, TemplateSyntaxError
from django.template.base import FilterExpression, Node, TextNode, Variable, VariableNode
from django.template.defaulttags import CommentNode, IfNode
from django.utils.html import strip_tags

from crm.messaging.context import placeholder_known, placeholder_names

# No loaders, no libraries to {% load %}: a template reaches no file and no other tag library.
_HTML_ENGINE = Engine(libraries={}, loaders=[], autoescape=True, string_if_invalid="")
_TEXT_ENGINE = Engine(libraries={}, loaders=[], autoescape=False, string_if_invalid="")
ALLOWED_NODES = (TextNode, VariableNode, IfNode, CommentNode)
# Filters that would let a value out unescaped.
REFUSED_FILTERS = {"safe", "safeseq"}


def sanitize_html(value: str) -> str:
    """The HTML a person typed, with what could run or leak removed (scripts, handlers, styles)."""
    return nh3.clean(value) if value else value


def _expressions_of_condition(condition):
    if condition is None:
        return
    value = getattr(condition, "value", None)
    if isinstance(value, FilterExpression):
        yield value
    for side in ("first", "second"):
        operand = getattr(condition, side, None)
        if operand is not None:
            yield from _expressions_of_condition(operand)


def _nodes(nodelist):
    for node in nodelist:
        yield node
        if isinstance(node, IfNode):
            for _, child in node.conditions_nodelists:
                yield from _nodes(child)
        elif not isinstance(node, CommentNode):
            for attr in node.child_nodelists:
                yield from _nodes(getattr(node, attr, None) or [])


def _tag_name(node: Node) -> str:
    token = getattr(node, "token", None)
    return token.contents.split()[0] if token is not None and token.contents else type(node).__name__


def _expressions(nodelist):
    for node in _nodes(nodelist):
        if not isinstance(node, ALLOWED_NODES):
            raise ValueError(
                f"The tag {{% {_tag_name(node)} %}} is not allowed: use placeholders and {{% if %}}."
            )
        if isinstance(node, VariableNode):
            yield node.filter_expression
        elif isinstance(node, IfNode):
            for condition, _ in node.conditions_nodelists:
                yield from _expressions_of_condition(condition)


def _variables(expression: FilterExpression):
    if isinstance(expression.var, Variable):
        yield expression.var
    for function, arguments in expression.filters:
        name = getattr(function, "_filter_name", function.__name__)
        if name in REFUSED_FILTERS:
            raise ValueError(f"The filter |{name} is not allowed: values are always escaped.")
        for is_variable, argument in arguments:
            if is_variable and isinstance(argument, Variable):
                yield argument


def template_problems(source: str) -> list[str]:
    """What is wrong with ``source`` as a template (empty when it is fine)."""
    if not source:
        return []
    try:
        nodelist = _TEXT_ENGINE.from_string(source).nodelist
        unknown: list[str] = []
        for expression in _expressions(nodelist):
            for variable in _variables(expression):
                if variable.lookups is None:
                    continue  # a literal: "hot", 3
                if not placeholder_known(variable.lookups):
                    name = ".".join(variable.lookups)
                    if name not in unknown:
                        unknown.append(name)
    except TemplateSyntaxError as exc:
        return [f"This is not a valid template: {exc}"]
    except ValueError as exc:
        return [str(exc)]
    if unknown:
        return [
            f"Unknown placeholder{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}. "
            f"Known placeholders: {', '.join(placeholder_names())}."
        ]
    return []


def template_check(fields: dict[str, str]) -> None:
    """Raise a ValidationError naming, per field, what is wrong with each template source."""
    errors = {name: problems for name, source in fields.items() if (problems := template_problems(source))}
    if errors:
        raise ValidationError(errors)


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


def html_to_text(value: str) -> str:
    text = html.unescape(strip_tags(re.sub(r"(?i)<br\s*/?>|</p>|</div>|</li>|</h\d>", "\n", value)))
    lines = [line.strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def template_render(*, subject: str, body_html: str, body_text: str, context: dict) -> Rendered:
    rendered_html = _HTML_ENGINE.from_string(body_html).render(Context(context)) if body_html else ""
    if body_text:
        text = _TEXT_ENGINE.from_string(body_text).render(Context(context, autoescape=False))
    else:
        text = html_to_text(rendered_html)
    rendered_subject = _TEXT_ENGINE.from_string(subject).render(Context(context, autoescape=False))
    # Plain strings, not the engine's SafeString: a page showing them must escape them again.
    return Rendered(
        subject=" ".join(rendered_subject.split())[:255], html="".join([rendered_html]), text="".join([text])
    )
