"""Data: datasets and versions, the feature encoder, and the demo data set."""
