"""Mints JWTs with PyJWT (an independent implementation) for the security-policy tests.

Usage: jwt_mint.py
Generates an RSA 2048, an EC P-256 and an Ed25519 key, and prints one JSON object: the public
keys as a JWKS ("jwks", kids rsa/ec/ed), and tokens ("tokens": name -> token) signed with them.
"""
import json
import time

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

keys = {
    "rsa": (rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256", RSAAlgorithm),
    "ec": (ec.generate_private_key(ec.SECP256R1()), "ES256", ECAlgorithm),
    "ed": (ed25519.Ed25519PrivateKey.generate(), "EdDSA", OKPAlgorithm),
}
jwks = []
for kid, (private, alg, algorithm) in keys.items():
    public = json.loads(algorithm.to_jwk(private.public_key()))
    public["kid"] = kid
    jwks.append(public)

now = int(time.time())
good = {"iss": "https://idp.example", "aud": "api", "sub": "alice", "scope": "read",
        "exp": now + 600}


def sign(kid, claims, headers=None):
    private, alg, _ = keys[kid]
    return jwt.encode(claims, private, algorithm=alg, headers={"kid": kid, **(headers or {})})


tokens = {
    "rs256": sign("rsa", good),
    "es256": sign("ec", good),
    "eddsa": sign("ed", good),
    # Envoy Gateway's own test tokens carry no kid and no exp: tried against every key.
    "no_kid_no_exp": jwt.encode({k: v for k, v in good.items() if k != "exp"},
                                keys["rsa"][0], algorithm="RS256"),
    "expired": sign("rsa", {**good, "exp": now - 3600}),
    "wrong_audience": sign("ec", {**good, "aud": "other"}),
    "no_scope": sign("ed", {**good, "scope": "write"}),
}
print(json.dumps({"jwks": {"keys": jwks}, "tokens": tokens}))
