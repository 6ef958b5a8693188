"""Tests of mailer.web."""
