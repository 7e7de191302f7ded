"""Mailbox passwords encrypted at rest: Fernet with the keys of CRM_MAILBOX_KEYS (the first encrypts,
every one decrypts, so a key can be rotated by putting the new one first)."""

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


def _keys() -> list[bytes]:
    keys = [key.strip().encode() for key in settings.CRM_MAILBOX_KEYS if key.strip()]
    if not keys:
        # Development: a key derived from SECRET_KEY (production sets CRM_MAILBOX_KEYS; see settings).
        digest = hashlib.sha256(b"crm-mailbox-password:" + settings.SECRET_KEY.encode()).digest()
        keys = [base64.urlsafe_b64encode(digest)]
    return keys


def _fernet() -> MultiFernet:
    try:
        return MultiFernet([Fernet(key) for key in _keys()])
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(
            "CRM_MAILBOX_KEYS must hold Fernet keys (32 url-safe base64-encoded bytes each)."
        ) from exc


def secret_encrypt(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode()


def secret_decrypt(token: str) -> str:
    """The clear text, or a ValueError when no key of CRM_MAILBOX_KEYS opens it (a key was lost)."""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ValueError("The mailbox password cannot be decrypted with CRM_MAILBOX_KEYS.") from exc
