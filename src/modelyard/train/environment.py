"""What a run or a saved model records about the software it ran on.

Kept free of heavy imports: listing runs must not load the training stack.
"""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

#: Libraries whose versions change predictions; recorded with every run and model.
LIBRARIES = ("numpy", "pandas", "scikit-learn", "lightgbm", "xgboost", "skops", "onnxruntime")


def library_versions() -> dict[str, str]:
    """Python and the installed versions of ``LIBRARIES``."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": library_versions(),
    }


def code_version(root: Path) -> dict[str, Any]:
    """The git commit of the project folder and whether it has uncommitted changes."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=5, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"git": None}
    return {"git": commit, "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
