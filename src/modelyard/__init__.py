"""modelyard: from a tabular data set to a governed, monitored model service.

The object model, bottom to top::

    Spec ──► Project (metadata Database + ArtifactStore)
               ├── DatasetVersion      add_dataset / load_dataset, Recipe, make_split,
               │                       check_split, label quality, ImbalancePolicy
               ├── Run                 train_candidates → one run per candidate (FAMILIES),
               │                       search (child runs), build_leaderboard, reproduce_run
               ├── evaluation          build_evaluation, slices, fairness, robustness,
               │                       compare_models, render_report
               ├── ModelVersion        register_model / resolve("loans@champion"),
               │                       evaluate_version, approve / promote, verify_audit
               └── served model        modelyard serve / run_quickstart

Names are imported lazily so that ``import modelyard`` (and the CLI) stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Spec": "modelyard.spec",
    "load_spec": "modelyard.spec",
    "parse_spec": "modelyard.spec",
    "Project": "modelyard.project",
    "DatasetVersion": "modelyard.data.datasets",
    "add_dataset": "modelyard.data.datasets",
    "load_dataset": "modelyard.data.datasets",
    "list_datasets": "modelyard.data.datasets",
    "Run": "modelyard.train.runs",
    "list_runs": "modelyard.train.runs",
    "train_candidates": "modelyard.train.trainer",
    "ModelVersion": "modelyard.registry.versions",
    "register_model": "modelyard.registry.versions",
    "import_model": "modelyard.registry.imports",
    "ImportedModel": "modelyard.registry.imports",
    "ServedModel": "modelyard.serve.model",
    "load_served": "modelyard.serve.model",
    "create_app": "modelyard.serve.app",
    "set_alias": "modelyard.registry.versions",
    "resolve": "modelyard.registry.versions",
    "list_models": "modelyard.registry.versions",
    "load_bundle": "modelyard.train.bundle",
    "run_quickstart": "modelyard.quickstart",
    "ModelyardError": "modelyard.errors",
    "SpecError": "modelyard.errors",
    "DataError": "modelyard.errors",
    "NotFoundError": "modelyard.errors",
    "Recipe": "modelyard.data.cleaning",
    "apply_recipe": "modelyard.data.cleaning",
    "Split": "modelyard.data.splits",
    "make_split": "modelyard.data.splits",
    "check_split": "modelyard.data.leakage",
    "LeakageReport": "modelyard.data.leakage",
    "ImbalancePolicy": "modelyard.data.imbalance",
    "resample": "modelyard.data.imbalance",
    "majority_vote": "modelyard.data.labels",
    "find_label_issues": "modelyard.data.labels",
    "fleiss_kappa": "modelyard.data.labels",
    "krippendorff_alpha_nominal": "modelyard.data.labels",
    "cohen_kappa": "modelyard.data.labels",
    "revise_labels": "modelyard.data.labels",
    "Schema": "modelyard.data.schema",
    "get_version": "modelyard.data.datasets",
    "iter_batches": "modelyard.data.datasets",
    "lineage": "modelyard.data.datasets",
    "set_schema": "modelyard.data.datasets",
    "validate": "modelyard.data.validation",
    "validate_dataset": "modelyard.data.validation",
    "diff": "modelyard.data.diff",
    "clean_version": "modelyard.data.cleaning.versions",
    "reproduce_run": "modelyard.train.reproduce",
    "build_leaderboard": "modelyard.train.leaderboard",
    "search": "modelyard.train.search",
    "get_run": "modelyard.train.runs",
    "metric_history": "modelyard.train.runs",
    "FAMILIES": "modelyard.train.families",
    "render_report": "modelyard.evaluate.report",
    "write_report": "modelyard.evaluate.report",
    "build_evaluation": "modelyard.evaluate.report",
    "robustness_report": "modelyard.evaluate.robustness",
    "compare_models": "modelyard.evaluate.compare",
    "named_slices": "modelyard.evaluate.slices",
    "worst_slices": "modelyard.evaluate.slices",
    "fairness_report": "modelyard.evaluate.fairness",
    "bootstrap_metric": "modelyard.evaluate.bootstrap",
    "approve": "modelyard.registry.promotion",
    "reject": "modelyard.registry.promotion",
    "promote": "modelyard.registry.promotion",
    "verify_audit": "modelyard.registry.audit",
    "evaluate_version": "modelyard.registry.evaluation",
    "compare_versions": "modelyard.registry.evaluation",
    "create_user": "modelyard.registry.users",
    "create_token": "modelyard.registry.users",
    "create_management_app": "modelyard.api.app",
}

#: Public names that differ from the name inside their module.
_ALIASES = {"verify_audit": "verify"}

__all__ = [
    "FAMILIES",
    "DataError",
    "DatasetVersion",
    "ImbalancePolicy",
    "ImportedModel",
    "LeakageReport",
    "ModelVersion",
    "ModelyardError",
    "NotFoundError",
    "Project",
    "Recipe",
    "Run",
    "Schema",
    "ServedModel",
    "Spec",
    "SpecError",
    "Split",
    "__version__",
    "add_dataset",
    "apply_recipe",
    "approve",
    "bootstrap_metric",
    "build_evaluation",
    "build_leaderboard",
    "check_split",
    "clean_version",
    "cohen_kappa",
    "compare_models",
    "compare_versions",
    "create_app",
    "create_management_app",
    "create_token",
    "create_user",
    "diff",
    "evaluate_version",
    "fairness_report",
    "find_label_issues",
    "fleiss_kappa",
    "get_run",
    "get_version",
    "import_model",
    "iter_batches",
    "krippendorff_alpha_nominal",
    "lineage",
    "list_datasets",
    "list_models",
    "list_runs",
    "load_bundle",
    "load_dataset",
    "load_served",
    "load_spec",
    "majority_vote",
    "make_split",
    "metric_history",
    "named_slices",
    "parse_spec",
    "promote",
    "register_model",
    "reject",
    "render_report",
    "reproduce_run",
    "resample",
    "resolve",
    "revise_labels",
    "robustness_report",
    "run_quickstart",
    "search",
    "set_alias",
    "set_schema",
    "train_candidates",
    "validate",
    "validate_dataset",
    "verify_audit",
    "worst_slices",
    "write_report",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'modelyard' has no attribute {name!r}")
    return getattr(importlib.import_module(module), _ALIASES.get(name, name))


def __dir__() -> list[str]:
    return __all__
