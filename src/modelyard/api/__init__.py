"""The HTTP management API: datasets, runs, models, approvals and the audit log.

    create_management_app(project)   the FastAPI app; every call needs a bearer token
    run_api(spec_path, host, port)   serve it with uvicorn (``modelyard api``)

Each resource group is one module (``datasets``, ``runs``, ``models``,
``audit``, ``identity``); ``auth`` checks the token and the role's permission,
``errors`` turns every failure into DESIGN.md's JSON error shape.
"""

from __future__ import annotations

from modelyard.api.app import create_management_app

__all__ = ["create_management_app"]
