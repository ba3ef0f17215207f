"""`livetoken block`, `unblock`, `blocks`: an operator's commands against the deployment's Redis.

They read the same configuration as `serve` (`--config` or `LIVETOKEN_CONFIG`, and `LIVETOKEN_REDIS_URL`), so
the blocks land where every replica's limiter looks. Each change is an audit log line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from service.config import ConfigError, Duration, load_env, load_file_config
from service.errors import MalformedRequest

if TYPE_CHECKING:  # imported when a command runs: building the CLI's parser stays cheap
    from service.issuing import Blocking
    from service.ratelimit.blocks import BlockRecord


def add_arguments(
    block: argparse.ArgumentParser, unblock: argparse.ArgumentParser, blocks: argparse.ArgumentParser
) -> None:
    """The three commands' options."""
    for parser in (block, unblock, blocks):
        parser.add_argument("--config", help="TOML config file (default: $LIVETOKEN_CONFIG)")
    for parser in (block, unblock):
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument("--subject", help="the caller's subject (as in its JWT)")
        who.add_argument("--tenant", help="a tenant: every caller whose tenant claim is this")
        parser.add_argument("--issuer", help="the subject's issuer (needed when several are configured)")
    block.add_argument("--for", dest="duration", default="1h", help="how long, e.g. 30m, 1h, 7d (default 1h)")
    block.add_argument("--reason", default="", help="a note for `livetoken blocks` and the audit log")
    blocks.add_argument("--json", action="store_true", help="print the blocks as JSON")


def _run(args: argparse.Namespace, action: Callable[[Blocking], Awaitable[int]]) -> int:
    from service.issuing import Blocking
    from service.logging import configure_logging
    from service.ratelimit import connect_redis
    from service.ratelimit.blocks import BlockStoreUnavailableError, RedisBlockStore

    path = args.config or os.environ.get("LIVETOKEN_CONFIG")
    try:
        if not path:
            raise ConfigError("LIVETOKEN_CONFIG: blocks live in the deployment's Redis; name its config file")
        file = load_file_config(path)
        env = load_env(os.environ, file, require_api_key=False)
        if env.redis_url is None:
            raise ConfigError("LIVETOKEN_REDIS_URL: not set (blocks live in Redis; dev mode: use /v1/admin/blocks)")
    except ConfigError as exc:
        print(f"livetoken: configuration error: {' '.join(str(exc).splitlines())}", file=sys.stderr)
        return 2
    configure_logging(env.log_format or "json", env.log_level)
    limits = file.limits
    timeout = float(limits.redis_timeout)

    async def go() -> int:
        client = connect_redis(env.redis_url.reveal() if env.redis_url else "", timeout, cluster=limits.redis_cluster)
        try:
            store = RedisBlockStore(client, limits.key_prefix, timeout)
            return await action(Blocking(store, [issuer.issuer for issuer in file.issuers]))
        finally:
            await client.aclose()

    try:
        return asyncio.run(go())
    except MalformedRequest as exc:
        print(f"livetoken: {exc.detail}", file=sys.stderr)
        return 2
    except BlockStoreUnavailableError as exc:
        print(f"livetoken: Redis did not answer ({exc}); nothing was changed", file=sys.stderr)
        return 1


def _operator() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def cmd_block(args: argparse.Namespace) -> int:
    """`livetoken block`."""
    try:
        seconds = float(Duration.parse(args.duration))
    except ValueError:
        print("livetoken block: --for: expected a duration such as 30m, 1h or 7d", file=sys.stderr)
        return 2

    async def action(blocking: Blocking) -> int:
        record = await blocking.block(
            subject=args.subject,
            issuer=args.issuer,
            tenant=args.tenant,
            seconds=seconds,
            reason=args.reason,
            by=_operator(),
        )
        print(f"blocked {_describe(record)} until {_when(record.expires_at)}")
        return 0

    return _run(args, action)


def cmd_unblock(args: argparse.Namespace) -> int:
    """`livetoken unblock`."""

    async def action(blocking: Blocking) -> int:
        lifted = await blocking.unblock(subject=args.subject, issuer=args.issuer, tenant=args.tenant, by=_operator())
        who = f"tenant {args.tenant}" if args.tenant is not None else f"subject {args.subject}"
        print(f"unblocked {who}" if lifted else f"{who} was not blocked")
        return 0 if lifted else 1

    return _run(args, action)


def cmd_blocks(args: argparse.Namespace) -> int:
    """`livetoken blocks`."""

    async def action(blocking: Blocking) -> int:
        records = await blocking.all()
        if args.json:
            print(json.dumps([{f: getattr(r, f) for f in r.__struct_fields__} for r in records], indent=2))
        elif not records:
            print("no blocks")
        for record in [] if args.json else records:
            reason = f"  ({record.reason})" if record.reason else ""
            print(f"{_describe(record)}  until {_when(record.expires_at)}  by {record.by}{reason}")
        return 0

    return _run(args, action)


def _describe(record: BlockRecord) -> str:
    if record.layer == "tenant":
        return f"tenant {record.who}"
    return f"subject {record.who} (issuer {record.issuer})"


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))
