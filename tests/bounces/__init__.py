"""Tests of mailer.bounces."""
