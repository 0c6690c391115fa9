"""Billing adapters: the Stripe SDK and the SQL ledger live only here."""
