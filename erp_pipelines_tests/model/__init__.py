"""Model-based randomized tests (issue 11): each source's real stand-in against an independent reference model."""
