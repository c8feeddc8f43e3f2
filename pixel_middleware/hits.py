"""Making the stored record of a pixel request: the visitor's rules applied one last time."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence

from . import wire
from .addresses import truncate_ip
from .identity import IdentityState
from .request_info import RequestInfo
from .settings import PixelSettings
from .sinks import Hit

# Forwarding parameters with columns of their own: kept there, added back by the relay.
_FORWARDED = frozenset({"x-wt-ip", "x-wt-ua"})


def make_hit(
    settings: PixelSettings,
    request: RequestInfo,
    track_id: str,
    params: Sequence[tuple[str, str]],
    *,
    anonymous: bool,
    identity: IdentityState,
    visitor_ip: str | None = None,
    visitor_ua: str | None = None,
    hit_id: str | None = None,
    no_address: bool = False,
    sender_speaks_for_visitor: bool = False,
) -> Hit:
    """The hit for ``params`` (raw wire pairs) as the visitor's state allows it to be stored.

    Anonymous: no everID, session, user agent, and at most a truncated IP. Identified: the
    everID and session of ``identity`` (``one``/``fns`` when this visit made them), the visitor's
    IP and user agent: ``visitor_ip``/``visitor_ua`` when a trusted sender named them, else the
    request's own. ``no_address`` (``SP-Anonymous``) keeps not even a truncated IP. When
    ``sender_speaks_for_visitor`` (a trusted server's batch), the request's own address and
    browser are the server's: only what the line says is kept.
    With anonymous_session on, an anonymous hit carries the visitor's temporary session id.
    """
    enforced = wire.enforce(
        params,
        settings,
        anonymous=anonymous,
        ever_id=identity.ever_id,
        new_visitor=identity.new_visitor,
        new_session=identity.new_session,
        temporary_id=identity.temporary_id,
        keep_temporary=settings.anonymous_session and not no_address,
    )
    query = wire.encode([(k, v) for k, v in enforced if wire.param_key(k) not in _FORWARDED])
    ip = visitor_ip if sender_speaks_for_visitor else (visitor_ip or request.client_ip)
    if anonymous:
        return Hit(
            received_at=time.time(),
            track_id=track_id,
            anonymous=True,
            query=query,
            ip=None if no_address else truncate_ip(ip, settings.anonymous_ip_truncation),
            session_id=None
            if no_address or not settings.anonymous_session
            else identity.temporary_id,
            hit_id=hit_id,
        )
    return Hit(
        received_at=time.time(),
        track_id=track_id,
        anonymous=False,
        query=query,
        ever_id=identity.ever_id,
        session_id=identity.session_id,
        ip=ip,
        user_agent=(
            visitor_ua
            if visitor_ua is not None or sender_speaks_for_visitor
            else request.header("user-agent")
        ),
        hit_id=hit_id,
    )


def dedup_id(settings: PixelSettings, *parts: str) -> str:
    """A hit id derived from what was received, so that a resent request is stored once.

    Mapp's clients resend a batch they think failed (PHP after any answer but 200, cron jobs with
    the whole file) and the Smart Pixel's queue resends a hit; none sends a request id, and each
    request carries its millisecond timestamp in ``p``. Keyed with the secret, so the id reveals
    nothing of what it was made from (an anonymous row's id cannot be checked against an everID).
    """
    message = "\x1f".join(parts).encode("utf-8", "surrogatepass")
    digest = hmac.new(settings.secret_key.encode("utf-8"), message, hashlib.sha256)
    return digest.hexdigest()[:32]
