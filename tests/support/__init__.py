"""Helpers shared by the tests (fixtures that write small real files)."""
