"""Tests of mailer.message."""
