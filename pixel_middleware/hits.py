"""Making the stored record of a pixel request: the visitor's rules applied one last time."""

from __future__ import annotations

import time
from collections.abc import Sequence

from . import wire
from .addresses import truncate_ip
from .identity import IdentityState
from .request_info import RequestInfo
from .settings import PixelSettings
from .sinks import Hit


def make_hit(
    settings: PixelSettings,
    request: RequestInfo,
    track_id: str,
    params: Sequence[tuple[str, str]],
    *,
    anonymous: bool,
    identity: IdentityState,
) -> Hit:
    """The hit for ``params`` (raw wire pairs) as the visitor's state allows it to be stored.

    Anonymous: no everID, session, user agent, and at most a truncated IP. Identified: the
    everID and session of ``identity``, the client IP and user agent.
    """
    query = wire.encode(
        wire.enforce(params, settings, anonymous=anonymous, ever_id=identity.ever_id)
    )
    if anonymous:
        return Hit(
            received_at=time.time(),
            track_id=track_id,
            anonymous=True,
            query=query,
            ip=truncate_ip(request.client_ip, settings.anonymous_ip_truncation),
        )
    return Hit(
        received_at=time.time(),
        track_id=track_id,
        anonymous=False,
        query=query,
        ever_id=identity.ever_id,
        session_id=identity.session_id,
        ip=request.client_ip,
        user_agent=request.header("user-agent"),
    )
