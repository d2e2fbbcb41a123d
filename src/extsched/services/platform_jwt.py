"""Host-platform identity: bearer JWTs verified with an HS256 secret or keys from a JWKS URL.

SPEC §4. Verification is PyJWT's; this module picks the key, pins the algorithm to the key's
kind (so an RSA public key can never be used as an HMAC secret, and ``alg: none`` never
verifies), checks ``exp`` (60 s leeway), ``iss``/``aud`` when configured, and turns the claims
``tenant``, ``sub``, ``perms`` and ``tz`` into a principal.

JWKS keys are cached. A token naming an unknown ``kid`` triggers one refetch (single flight, at
most every ``EXTSCHED_JWT_JWKS_MIN_REFETCH_SECONDS``); a cache older than
``EXTSCHED_JWT_JWKS_MAX_AGE_SECONDS`` is refreshed in the background. Requests with a known key
never wait for the JWKS server, so its outage does not stall them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
import jwt

from extsched.config import Settings
from extsched.domain import cron
from extsched.domain.auth import TENANT_ID_RE, Permission, Principal
from extsched.errors import Unauthenticated

log = logging.getLogger("extsched.jwt")

LEEWAY_SECONDS = 60
MAX_JWT_LENGTH = 8192
# Algorithms per kind of key: HS256 only with the shared secret, the others only with JWKS keys.
SECRET_ALGORITHM = "HS256"
JWKS_ALGORITHMS = frozenset({"RS256", "ES256", "EdDSA"})


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")


class JwksCache:
    """The keys of one JWKS URL by ``kid``."""

    def __init__(
        self, url: str, *, min_refetch_seconds: float, max_age_seconds: float, timeout: float = 3.0
    ) -> None:
        self.url = url
        self.min_refetch_seconds = min_refetch_seconds
        self.max_age_seconds = max_age_seconds
        self.timeout = timeout
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._attempted_at = float("-inf")
        self._lock: asyncio.Lock | None = None
        self._refresh: asyncio.Task[None] | None = None
        self.fetches = 0

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None:
            # A token without kid is accepted only while the set holds exactly one key.
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    async def key(self, kid: str | None) -> jwt.PyJWK | None:
        """The key for ``kid``: from the cache, else after one refetch; None if unknown."""
        found = self._lookup(kid)
        if found is not None:
            self._refresh_if_stale()
            return found
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            found = self._lookup(kid)
            if found is None and self._may_fetch():
                await self._fetch()
                found = self._lookup(kid)
        return found

    def _may_fetch(self) -> bool:
        return time.monotonic() - self._attempted_at >= self.min_refetch_seconds

    def _refresh_if_stale(self) -> None:
        stale = (
            self._fetched_at is None or time.monotonic() - self._fetched_at > self.max_age_seconds
        )
        running = self._refresh is not None and not self._refresh.done()
        if stale and not running and self._may_fetch():
            self._refresh = asyncio.get_running_loop().create_task(self._fetch())

    async def _fetch(self) -> None:
        self._attempted_at = time.monotonic()
        self.fetches += 1
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.get(self.url, headers={"accept": "application/json"})
            response.raise_for_status()
            keys = self._parse(response.json())
        except Exception as exc:  # an outage keeps the keys we have
            log.warning(
                "JWKS fetch failed; keeping %d cached keys",
                len(self._keys),
                extra={"url": self.url, "error": type(exc).__name__},
            )
            return
        self._keys = keys
        self._fetched_at = time.monotonic()

    @staticmethod
    def _parse(document: Any) -> dict[str, jwt.PyJWK]:
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ValueError("not a JWKS document")
        keys: dict[str, jwt.PyJWK] = {}
        for entry in document["keys"]:
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                continue
            try:
                key = jwt.PyJWK(entry)
            except jwt.PyJWKError:
                continue  # a key of a kind we do not verify with
            if key.algorithm_name in JWKS_ALGORITHMS:
                keys[str(entry.get("kid", ""))] = key
        return keys


class JwtVerifier:
    """Verifies bearer JWTs for one service configuration."""

    def __init__(self, settings: Settings) -> None:
        self.secret = settings.jwt_secret
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        self.jwks = (
            JwksCache(
                settings.jwt_jwks_url,
                min_refetch_seconds=settings.jwt_jwks_min_refetch_seconds,
                max_age_seconds=settings.jwt_jwks_max_age_seconds,
            )
            if settings.jwt_jwks_url
            else None
        )

    async def claims(self, token: str) -> dict[str, Any]:
        """The verified claims of ``token``; raises Unauthenticated saying what is wrong."""
        if len(token) > MAX_JWT_LENGTH:
            raise Unauthenticated("the token is too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise Unauthenticated("the token is not a well-formed JWT") from None
        alg = header.get("alg")
        key: Any
        if alg == SECRET_ALGORITHM and self.secret:
            key = self.secret
        elif alg in JWKS_ALGORITHMS and self.jwks is not None:
            kid = header.get("kid")
            if kid is not None and not isinstance(kid, str):
                raise Unauthenticated("the token's kid is not a string")
            jwk = await self.jwks.key(kid)
            if jwk is None:
                raise Unauthenticated("the token is signed with an unknown key (kid)")
            if jwk.algorithm_name != alg:
                raise Unauthenticated(f"the token's algorithm {alg} does not match its key")
            key = jwk.key
        else:
            raise Unauthenticated(f"the token's algorithm {alg!r} is not accepted")
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[alg],
                issuer=self.issuer,
                audience=self.audience,
                leeway=LEEWAY_SECONDS,
                options={
                    "require": ["exp", "sub"],
                    "verify_aud": self.audience is not None,
                    "verify_iss": self.issuer is not None,
                },
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"the token lacks the {exc.claim} claim") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("the token's audience (aud) is not accepted") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("the token's issuer (iss) is not accepted") from None
        except jwt.InvalidSignatureError:
            raise Unauthenticated("the token's signature does not verify") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"the token is not valid: {exc}") from None

    async def principal(self, token: str) -> Principal:
        return principal_from_claims(await self.claims(token))


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    """The principal the claims describe; raises Unauthenticated for a missing or bad claim."""
    sub = claims.get("sub")
    if not isinstance(sub, str) or not 1 <= len(sub) <= 200 or not sub.isprintable():
        raise Unauthenticated("the token's sub claim must be 1-200 printable characters")
    perms_claim = claims.get("perms")
    if not isinstance(perms_claim, list) or not perms_claim:
        raise Unauthenticated("the token lacks the perms claim (a list of permissions)")
    try:
        perms = frozenset(Permission(p) for p in perms_claim)
    except (ValueError, TypeError):
        raise Unauthenticated("the token's perms claim names an unknown permission") from None
    tz = claims.get("tz")
    if tz is not None:
        try:
            cron.load_zone(tz if isinstance(tz, str) else "")
        except cron.CronError:
            raise Unauthenticated("the token's tz claim is not an IANA time zone") from None
    if Permission.ADMIN in perms:
        return Principal(
            token_id=None,
            tenant_id=None,
            user_id=sub,
            user_timezone=tz,
            is_admin=True,
            permissions=frozenset({Permission.ADMIN}),
        )
    tenant = claims.get("tenant")
    if not isinstance(tenant, str) or not TENANT_ID_RE.match(tenant):
        raise Unauthenticated("the token lacks a valid tenant claim")
    return Principal(
        token_id=None,
        tenant_id=tenant,
        user_id=sub,
        user_timezone=tz,
        is_admin=False,
        permissions=perms,
    )
