"""Consent and communication preferences: what each lead or contact agreed to, and how they may be reached."""
