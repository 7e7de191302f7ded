"""Webhooks: subscriptions to domain events, signed deliveries (Standard Webhooks), retries, the log.

``delivery`` turns relayed events into deliveries and sends them, ``sending`` is the guarded HTTP
client, ``signing`` the signatures, ``services`` the writes, ``api`` and ``admin`` the doors.
"""
