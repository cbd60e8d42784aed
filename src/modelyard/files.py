"""Writing a file so that readers see the old content or the new, never half of it."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from modelyard.errors import InvalidInputError


def write_text_atomically(path: Path, text: str, *, make_parents: bool = False) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``.

    Without ``make_parents`` a missing folder is the user's mistake: a clear error.
    """
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise InvalidInputError(
            f"Cannot write {path}: {exc.strerror}. Check that its folder exists and is writable."
        ) from exc
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def json_text(data: Any) -> str:
    """The JSON twin of a report as every report writes it: indented, UTF-8, no NaN."""
    return json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_json_atomically(path: Path, data: Any, *, make_parents: bool = False) -> None:
    """``json_text(data)`` written with ``write_text_atomically``."""
    write_text_atomically(path, json_text(data), make_parents=make_parents)
