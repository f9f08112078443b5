"""Fixtures shared with the other data-handling tests (tests/data_fixtures.py)."""

from data_fixtures import files, image_dir, records  # noqa: F401
