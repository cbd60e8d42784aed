"""Evaluation: metrics, business thresholds and gates."""
