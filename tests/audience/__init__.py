"""Tests of mailer.audience."""
