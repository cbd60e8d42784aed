"""Path and query parameters shared by the resource modules, bounded so bad input is a 422."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

MAX_INT = 2**31 - 1

Name = Annotated[
    str,
    Path(
        min_length=1,
        max_length=200,
        pattern=r"^[^\x00-\x1f\x7f@/]+$",
        description="A dataset or model name.",
    ),
]
VersionNumber = Annotated[int, Path(ge=1, le=MAX_INT, description="A version number.")]
VersionRef = Annotated[
    str,
    Path(
        pattern=r"^([0-9]{1,9}|[a-z][a-z0-9_-]{0,63})$",
        description="A version number (3) or an alias (champion).",
    ),
]
