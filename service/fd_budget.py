"""How a process's open-files limit is shared: connections from callers, and sockets to Google.

The server lowers `server.max_connections` to what is left for connections; the runtime warms at most the
upstream share before it says it is ready (with `ulimit -n 256`, 256 warm TLS connections would take every
descriptor the server counts on).
"""

from __future__ import annotations

import resource

# File descriptors kept back from connections and upstream sockets: Redis (the shared pool of up to 64 and the
# limiter's own), the listening socket, the event loop, pipes, log streams, JWKS and tracing clients. The warm
# upstream pool is part of the upstream share (upstream_share), not of this reserve.
FD_RESERVE = 160


def fd_ceiling(nofile_soft: int, max_in_flight: int | None = None) -> int | None:
    """The most connections a process with this soft RLIMIT_NOFILE can hold (None: unlimited).

    What FD_RESERVE leaves is shared between connections and upstream sockets, one per token request in
    flight: connections get what `max_in_flight` upstream sockets leave, and never less than half.
    """
    if nofile_soft == resource.RLIM_INFINITY:
        return None
    usable = nofile_soft - FD_RESERVE
    upstream = usable // 2 if max_in_flight is None else min(max_in_flight, usable // 2)
    return max(1, usable - upstream)


def upstream_share(nofile_soft: int, max_in_flight: int | None = None) -> int | None:
    """Sockets to Google a process with this soft RLIMIT_NOFILE may hold at once (None: unlimited)."""
    if nofile_soft == resource.RLIM_INFINITY:
        return None
    usable = nofile_soft - FD_RESERVE
    return max(0, usable // 2 if max_in_flight is None else min(max_in_flight, usable // 2))


def current_upstream_share(max_in_flight: int | None = None) -> int | None:
    """upstream_share for this process's own soft limit."""
    return upstream_share(resource.getrlimit(resource.RLIMIT_NOFILE)[0], max_in_flight)
