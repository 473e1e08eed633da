"""Ed25519 signing keys, the JWKS document, and minting access tokens."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from medstation_platform.auth.tokens import SIGNING_ALGORITHM
from user.domain import SigningKey, User


def new_signing_key(passphrase: bytes, now: datetime) -> SigningKey:
    private = Ed25519PrivateKey.generate()
    raw_public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    x = base64.urlsafe_b64encode(raw_public).decode().rstrip("=")
    # RFC 7638 thumbprint as key id: stable and derived from the key itself.
    thumbprint_input = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"))
    kid = base64.urlsafe_b64encode(hashlib.sha256(thumbprint_input.encode()).digest())
    kid_text = kid.decode().rstrip("=")
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid_text, "alg": "EdDSA", "use": "sig"}
    return SigningKey(kid=kid_text, private_key_pem=pem, public_jwk=jwk, created_at=now)


def jwks_document(keys: list[SigningKey]) -> bytes:
    return json.dumps({"keys": [key.public_jwk for key in keys]}, sort_keys=True).encode()


@dataclass(frozen=True)
class TokenMinter:
    """Mints access tokens with one loaded private key."""

    kid: str
    private_key: Ed25519PrivateKey
    issuer: str
    audience: str
    ttl: timedelta

    @classmethod
    def load(
        cls, key: SigningKey, passphrase: bytes, *, issuer: str, audience: str, ttl: timedelta
    ) -> TokenMinter:
        private = serialization.load_pem_private_key(key.private_key_pem, password=passphrase)
        if not isinstance(private, Ed25519PrivateKey):
            raise TypeError("signing keys must be Ed25519")
        return cls(key.kid, private, issuer, audience, ttl)

    def mint(self, user: User, session_id: str, now: datetime) -> str:
        issued = int(now.timestamp())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": user.id,
            "role": user.role,
            "sid": session_id,
            "jti": str(uuid.uuid4()),
            "iat": issued,
            "nbf": issued,
            "exp": issued + int(self.ttl.total_seconds()),
        }
        return jwt.encode(
            claims, self.private_key, algorithm=SIGNING_ALGORITHM, headers={"kid": self.kid}
        )
