"""A job creator's access token, sealed at rest for the worker that acts on their behalf.

Why the token itself: the patient-record service trusts only user access tokens (no
service may impersonate a user), and its care-team rules and PHI audit trail must see the
real person. So CreateSummaryJob stores the caller's token in the job row, sealed with
AES-GCM under `credentials_secret` and bound to the job id; the worker unseals it to read
the chart, and every end of the job erases it. Access tokens live minutes: a job that
waits longer than its creator's token fails with a reason that says to submit it again.
"""

from __future__ import annotations

import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from summary.domain import CredentialsUnreadable

_NONCE_BYTES = 12
_KEY_LABEL = b"medstation-summary-job-credentials\x00"


class CredentialSealer:
    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise ValueError("the credentials secret must not be empty")
        # A key of the right size whatever the secret's length, and for this use only.
        self._aead = AESGCM(hashlib.sha256(_KEY_LABEL + secret).digest())

    def seal(self, token: str, *, job_id: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, token.encode(), job_id.encode())

    def unseal(self, sealed: bytes, *, job_id: str) -> str:
        """The token; CredentialsUnreadable if it was sealed for another job or key."""
        nonce, ciphertext = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
        try:
            return self._aead.decrypt(nonce, ciphertext, job_id.encode()).decode()
        except (InvalidTag, ValueError):
            raise CredentialsUnreadable() from None
