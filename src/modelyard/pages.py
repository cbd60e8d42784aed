"""The Jinja environment every HTML report renders with (evaluation, drift, monitoring).

Templates ship in the package that owns the page; autoescaped, so a value from the
data can never become markup, and strict, so a misspelt variable fails the render
instead of leaving a hole in the page.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined


def page_environment(package: str, filters: Mapping[str, Callable[..., Any]]) -> Environment:
    """An environment over ``<package>/templates`` with the given ``filters``."""
    env = Environment(
        loader=PackageLoader(package, "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(filters)
    return env


__all__ = ["page_environment"]
