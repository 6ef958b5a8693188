"""Tests of mailer.engine."""
