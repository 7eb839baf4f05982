"""Shared test set-up. Fixture modules are plugins so each area owns its own fixtures."""

pytest_plugins = ["tests.fixtures_sim", "tests.fixtures_db"]
