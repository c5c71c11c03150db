"""Pandera models, one per application table: the rules a row must pass to be loaded."""
