"""Training: candidate model families, runs and their records."""
