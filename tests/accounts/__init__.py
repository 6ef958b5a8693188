"""Tests of mailer.accounts."""
