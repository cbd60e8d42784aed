"""Spec problems with a file, a line and a field: the error side of ``modelyard.spec``.

    text ──read_yaml──▶ (node tree with line marks, plain data)
                             │                    │
                             │          Spec.model_validate(data)
                             │                    │ ValidationError
                             └──── validation_issues ◀┘
                                          │
                                   [SpecIssue] ──spec_error──▶ SpecError

YAML syntax errors, duplicate keys, an empty file and a top level that is not
a mapping are found by ``read_yaml``. Each pydantic error is translated into
words that say what is allowed (the allowed fields with a "did you mean", the
expected type and the value got, the allowed values, "required"), and its
``loc`` is walked down the YAML node tree to find the line.

Models report cross-field problems through ``raise_problems``: one pydantic
error whose context keeps the sub-path of each problem, so that each problem
points at its own line.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from modelyard.errors import SpecError

__all__ = [
    "Problem",
    "SpecIssue",
    "did_you_mean",
    "raise_problems",
    "read_yaml",
    "show",
    "spec_error",
    "validation_issues",
]

Loc = tuple[str | int, ...]
Problem = tuple[Loc, str]
_RULES = "spec_rules"


@dataclass(frozen=True)
class SpecIssue:
    """One problem in a spec: the file, the line, the field and what is allowed."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


def spec_error(source: str, issues: list[SpecIssue]) -> SpecError:
    """One ``SpecError`` whose message lists every issue, one per line."""
    count = f"{len(issues)} problem{'s' if len(issues) != 1 else ''}"
    lines = "\n".join(f"  {issue}" for issue in issues)
    return SpecError(
        f"{count} in {source}:\n{lines}\nFix the spec and run `modelyard spec check` again.",
        issues=issues,
    )


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` for the closest of ``choices``, or an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def raise_problems(problems: list[Problem]) -> None:
    """Raise cross-field problems (each a sub-path and a message) from a model validator."""
    if problems:
        summary = "; ".join(f"{'.'.join(map(str, path))}: {msg}" for path, msg in problems)
        raise PydanticCustomError(_RULES, "{summary}", {"summary": summary, "problems": problems})


def show(value: Any) -> str:
    """A value as the user wrote it in YAML terms: 'text', 3, true, null, a list."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return str(value)


# --------------------------------------------------------------------------- YAML


class _Loader(yaml.SafeLoader):
    """The safe loader, reading ``1e-3`` as a number as YAML 1.2 does (1.1 wants ``1.0e-3``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def read_yaml(text: str, source: str) -> tuple[yaml.Node, dict[str, Any]]:
    """The node tree (for line numbers) and the data of one YAML mapping document."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise _one(
                source,
                None,
                "the file is empty; a spec needs at least name, task "
                "and target (run `modelyard init` for a commented template)",
            )
        duplicates = list(_duplicate_keys(root, source))
        if duplicates:
            raise spec_error(source, duplicates)
        data = loader.construct_document(root)
    except yaml.YAMLError as exc:
        raise spec_error(source, [_yaml_issue(exc, source)]) from exc
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        got = "a list" if isinstance(data, list) else f"the value {show(data)}"
        raise _one(
            source,
            root.start_mark.line + 1,
            "the top level must be a mapping of "
            f"fields (name: ..., task: ..., target: ...); got {got}",
        )
    return root, data


def _one(source: str, line: int | None, message: str) -> SpecError:
    return spec_error(source, [SpecIssue(source, line, "", message)])


def _yaml_issue(exc: yaml.YAMLError, source: str) -> SpecIssue:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    message = f"invalid YAML: {problem}"
    if mark is not None:
        message += f" (column {mark.column + 1})"
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and context_mark is not None and mark is not None and context_mark.line != mark.line:
        message += f", {context} that starts at line {context_mark.line + 1}"
    if "'\\t'" in problem:
        message += "; indent with spaces, not tabs"
    return SpecIssue(source, mark.line + 1 if mark is not None else None, "", message)


def _duplicate_keys(node: yaml.Node, source: str) -> Iterable[SpecIssue]:
    """PyYAML silently keeps the last of two equal keys; report the second instead."""
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                line = key.start_mark.line + 1
                if key.value in first:
                    message = f"duplicate key (first at line {first[key.value]}); keep one"
                    yield SpecIssue(source, line, key.value, message)
                first.setdefault(key.value, line)
            yield from _duplicate_keys(value, source)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _duplicate_keys(item, source)


# --------------------------------------------------------------------------- validation errors


def validation_issues(
    exc: ValidationError, root: yaml.Node, source: str, model: type[BaseModel]
) -> list[SpecIssue]:
    """One ``SpecIssue`` per problem in ``exc`` (raised by ``model``), sorted by line."""
    issues: list[SpecIssue] = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        if err["type"] == _RULES:
            pairs = [(loc + tuple(path), msg) for path, msg in err["ctx"]["problems"]]
        else:
            pairs = [(loc, _message(err, loc, model))]
        issues += [SpecIssue(source, *_locate(root, where), msg) for where, msg in pairs]
    return sorted(issues, key=lambda issue: issue.line or 0)


def _locate(root: yaml.Node, loc: Sequence[str | int]) -> tuple[int, str]:
    """The line and dotted path of ``loc``: a key's line or a list item's line; for a
    missing key, the line of its parent's key."""
    node: yaml.Node | None = root
    line, path = root.start_mark.line + 1, ""
    for part in loc:
        if part == "[key]":
            node = None
            continue
        in_list = isinstance(node, yaml.SequenceNode) or (node is None and isinstance(part, int))
        if isinstance(node, yaml.MappingNode):
            pairs = [(k, v) for k, v in node.value if getattr(k, "value", None) == str(part)]
            key, node = pairs[-1] if pairs else (None, None)
            line = key.start_mark.line + 1 if key is not None else line
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            node = None
        path += f"[{part}]" if in_list else (f".{part}" if path else str(part))
    return line, path


_EXPECTED = {
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "a whole number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "tuple_type": "a list",
    "list_type": "a list",
}
_BOUNDS = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤"}
_COMPARISONS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")


def _message(err: Mapping[str, Any], loc: Loc, model: type[BaseModel]) -> str:
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    where, field = _walk(model, loc)
    if kind == "missing":
        return f"required: {field.description}" if field and field.description else "required"
    if kind == "extra_forbidden":
        return _unknown_field(model, loc)
    if kind in _EXPECTED:
        return _wrong_type(_EXPECTED[kind], value, where)
    if kind == "literal_error":
        allowed = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        hint = did_you_mean(value, allowed) if isinstance(value, str) else ""
        return f"must be one of {', '.join(allowed)}; got {show(value)}" + (
            f".{hint}" if hint else ""
        )
    if kind in _COMPARISONS:
        return f"must be {_range(field, ctx)}; got {show(value)}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length')} item(s); got {show(value)}"
    if kind == "invalid_key":
        return f"field names must be strings; got {show(value)}"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    return str(err["msg"])


def _wrong_type(expected: str, value: Any, model: type[BaseModel] | None) -> str:
    if expected == "a mapping" and model is not None:
        expected = f"a mapping with fields {', '.join(model.model_fields)}"
    message = f"expected {expected}; got {show(value)}"
    if expected == "a string" and isinstance(value, bool):
        message += " (YAML reads yes/no/on/off as true/false: quote the text)"
    elif expected == "a string" and isinstance(value, int | float):
        message += f' (quote it if you mean the text "{value}")'
    return message


def _unknown_field(model: type[BaseModel], loc: Loc) -> str:
    parent, key = _walk(model, loc[:-1])[0], str(loc[-1])
    if parent is None:
        return "unknown field"
    allowed = list(parent.model_fields)
    hint = did_you_mean(key, allowed)
    if not hint and parent is model:  # a section's field written at the top level?
        homes = [
            f"{name}.{key}" for name, section in _sections(model) if key in section.model_fields
        ]
        hint = f" Did you mean {' or '.join(homes)}?" if homes else ""
    return f"unknown field; allowed: {', '.join(allowed)}.{hint}"


def _range(field: FieldInfo | None, ctx: Mapping[str, Any]) -> str:
    """All bounds of a numeric field, e.g. ``> 0 and < 1``, not just the one broken."""
    found: list[Any] = []
    if field is not None:
        found += field.metadata
        for arg in get_args(field.annotation):
            for meta in getattr(arg, "__metadata__", ()):
                found += meta.metadata if isinstance(meta, FieldInfo) else [meta]
    parts = [
        f"{symbol} {getattr(m, name):g}"
        for m in found
        for name, symbol in _BOUNDS.items()
        if isinstance(getattr(m, name, None), int | float)
    ]
    if not parts:
        parts = [f"{symbol} {ctx[name]:g}" for name, symbol in _BOUNDS.items() if name in ctx]
    return " and ".join(parts)


def _walk(
    model: type[BaseModel], loc: Sequence[str | int]
) -> tuple[type[BaseModel] | None, FieldInfo | None]:
    """The model at ``loc`` and, when ``loc`` ends on a field, that field's info."""
    current: type[BaseModel] | None = model
    field: FieldInfo | None = None
    containers = 0
    for part in loc:
        if containers:  # a list index or a dict key
            containers -= 1
            continue
        if current is None or not isinstance(part, str) or part not in current.model_fields:
            return None, None
        field = current.model_fields[part]
        current, containers = _inner_model(field.annotation)
    return current, field


def _inner_model(annotation: Any) -> tuple[type[BaseModel] | None, int]:
    """The model inside an annotation, and how many list or dict levels wrap it."""
    depth = 0
    while True:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return annotation, depth
        if getattr(annotation, "__origin__", None) in (tuple, list, dict):
            depth += 1
        args = [a for a in get_args(annotation) if a is not type(None) and a is not Ellipsis]
        if not args:
            return None, depth
        annotation = args[-1]


def _sections(model: type[BaseModel]) -> list[tuple[str, type[BaseModel]]]:
    """The fields of ``model`` that hold one sub-model (not a list of them)."""
    found = []
    for name, field in model.model_fields.items():
        section, depth = _inner_model(field.annotation)
        if section is not None and depth == 0:
            found.append((name, section))
    return found
