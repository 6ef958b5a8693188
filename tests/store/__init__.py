"""Tests of mailer.store."""
