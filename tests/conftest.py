"""Shared pytest fixtures: tiny checkpoints (model_fixtures) and synthetic data (data_fixtures)."""

pytest_plugins = ["tests.model_fixtures", "tests.data_fixtures"]
