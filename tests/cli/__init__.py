"""Tests of mailer.cli."""
