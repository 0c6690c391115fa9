"""Stripe subscriptions as a derived state machine, and the one access decision.

See docs/billing.md. Pure core; Stripe and SQL live only in ``billing.adapters``.
"""
