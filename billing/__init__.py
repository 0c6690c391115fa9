"""Stripe subscriptions and the access decision (filled by the billing issue)."""
