"""Standard Webhooks signatures: ``v1,`` + base64 HMAC-SHA256 of ``<id>.<timestamp>.<body>``."""

import base64
import hashlib
import hmac
import secrets

PREFIX = "whsec_"


def secret_new() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_key(secret: str) -> bytes:
    """The key bytes of a ``whsec_`` secret; ValueError when it is not one."""
    if not secret.startswith(PREFIX):
        raise ValueError("A webhook secret starts with “whsec_” followed by base64.")
    try:
        key = base64.b64decode(secret[len(PREFIX) :], validate=True)
    except ValueError as exc:
        raise ValueError("A webhook secret starts with “whsec_” followed by base64.") from exc
    if len(key) < 24:
        raise ValueError("A webhook secret needs at least 24 random bytes (32 recommended).")
    return key


def signature(*, secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(*, secret: str, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret=secret, webhook_id=webhook_id, timestamp=timestamp, body=body),
    }
