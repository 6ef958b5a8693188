"""Tests of mailer.smtp."""
