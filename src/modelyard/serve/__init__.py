"""Serving: the inference app and the server that runs it."""
