"""Tests of mailer.releases."""
