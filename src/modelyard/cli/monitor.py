"""``modelyard monitor …``: drift between data set versions, and model monitoring."""

from __future__ import annotations

from modelyard.cli._common import sub_app

monitor_app = sub_app("Monitor models: drift, realised performance, alerts.")
