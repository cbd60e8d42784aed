"""Monitoring: data and prediction drift against a baseline, by segment and over time.

    from modelyard.monitor import compare, compare_versions, write_drift_report
    report = compare(train_frame, recent_frame, ["income", "purpose"], thresholds=spec.drift)
    report.drifted_features                       # ['income']
    write_drift_report(report, html="drift.html", json_path="drift.json")

    baseline = fit_baseline(scored_train_frame, [*features, "score"])  # keep baseline.to_dict()
    detect_drift(Baseline.from_dict(stored), production_frame, features, predictions=["score"])
    drift_over_windows(baseline, production_frame, "applied_at", window="1d", step="1h")
    drift_by_segment(train_frame, production_frame, "region")

The object model::

    Baseline ── ColumnBaseline (bins, counts, values)      monitor.baseline
       │  compared, one column at a time, by               monitor.drift (tests), monitor.stats
       ▼
    DriftReport ── FeatureDrift (test, value, threshold, drifted, missing rates, statistics)
       ├── per time window: WindowDrift                   monitor.windows
       ├── per segment value: SegmentDrift                monitor.segments
       └── HTML + JSON                                    monitor.report
"""

from __future__ import annotations

import importlib
from typing import Any

# Imported on first use, so that importing one monitor module (the prediction
# log in the server, say) does not load scipy, Jinja and the drift code.
_EXPORTS = {
    "TESTS": "modelyard.monitor.drift",
    "Baseline": "modelyard.monitor.baseline",
    "ColumnBaseline": "modelyard.monitor.baseline",
    "DriftReport": "modelyard.monitor.drift",
    "FeatureDrift": "modelyard.monitor.drift",
    "SegmentDrift": "modelyard.monitor.segments",
    "WindowDrift": "modelyard.monitor.windows",
    "compare": "modelyard.monitor.drift",
    "compare_versions": "modelyard.monitor.drift",
    "detect_drift": "modelyard.monitor.drift",
    "drift_by_segment": "modelyard.monitor.segments",
    "drift_over_windows": "modelyard.monitor.windows",
    "fit_baseline": "modelyard.monitor.baseline",
    "prediction_drift": "modelyard.monitor.drift",
    "render_drift_report": "modelyard.monitor.report",
    "write_drift_report": "modelyard.monitor.report",
}

__all__ = [
    "TESTS",
    "Baseline",
    "ColumnBaseline",
    "DriftReport",
    "FeatureDrift",
    "SegmentDrift",
    "WindowDrift",
    "compare",
    "compare_versions",
    "detect_drift",
    "drift_by_segment",
    "drift_over_windows",
    "fit_baseline",
    "prediction_drift",
    "render_drift_report",
    "write_drift_report",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'modelyard.monitor' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__
