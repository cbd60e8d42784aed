"""The model registry: versions, aliases, stages, approvals and the audit log."""
