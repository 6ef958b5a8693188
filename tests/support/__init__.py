"""Test support: fixtures, fakes and servers, registered as a pytest plugin from tests/conftest.py."""
