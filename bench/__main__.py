"""`python -m bench [signin|idle|burst]`: Passgram under load next to the framework's floor.

Three kinds of process: the Bot API stand-in (with a loopback driver endpoint), the bot under
test (`passgram run`, unmodified) and this one, the load driver playing the people.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import Any

from bench import scenarios
from bench.harness import BenchError

DEFAULT_USERS = {"signin": 1000, "idle": 100_000, "burst": 10_000}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("scenario", nargs="?", choices=DEFAULT_USERS, default="signin")
    parser.add_argument("--users", type=int, help="people (default: 1000, 100000, 10000)")
    load = parser.add_mutually_exclusive_group()
    load.add_argument(
        "--concurrency", type=int, default=100, help="people at a time, closed loop (100)"
    )
    load.add_argument("--rate", type=float, help="steps started per second, open loop")
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server (postgresql+asyncpg://…): "
        "the run uses a scratch database on it; default a SQLite file",
    )
    parser.add_argument("--webhook", action="store_true", help="the bot in webhook mode")
    parser.add_argument(
        "--framework",
        action="append",
        choices=("aiogram", "ptb"),
        help="the bot's runtime (TELEGRAM_FRAMEWORK); give it twice to measure both side by "
        "side (signin); default aiogram",
    )
    parser.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="signin: also N webhook replicas behind a round-robin balancer, on the PostgreSQL "
        "of --database-url and the Redis of --redis-url, beside one process on SQLite",
    )
    parser.add_argument("--redis-url", help="the Redis the replicas share (redis://…)")
    parser.add_argument(
        "--driven",
        type=int,
        help="idle: people driven through Telegram "
        "(default 2000; the rest are seeded into the database)",
    )
    parser.add_argument("--gate-timeout", type=int, default=30, help="burst: the gate's timeout")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    return parser.parse_args(argv)


def report(result: dict[str, Any]) -> str:
    lines = [f"{k}: {v}" for k, v in result.items() if not isinstance(v, dict)]
    for key, value in result.items():
        if isinstance(value, dict):
            lines.append(f"{key}:")
            lines += [f"  {k}: {v}" for k, v in value.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    # A terminated bench cancels its run, whose clean-up stops the processes it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    frameworks = tuple(dict.fromkeys(args.framework or ["aiogram"]))
    if args.replicas > 1 and not (
        args.scenario == "signin" and args.database_url and args.redis_url
    ):
        print(
            "bench: --replicas is for signin, with --database-url and --redis-url", file=sys.stderr
        )
        return 2
    opts = scenarios.Options(
        users=args.users or DEFAULT_USERS[args.scenario],
        concurrency=args.concurrency,
        rate=args.rate,
        database_url=args.database_url,
        webhook=args.webhook,
        driven=args.driven,
        gate_timeout=args.gate_timeout,
        frameworks=frameworks,
        replicas=args.replicas,
        redis_url=args.redis_url,
    )
    run = {"signin": scenarios.signin, "idle": scenarios.idle, "burst": scenarios.burst}
    try:
        result = asyncio.run(run[args.scenario](opts))
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    result = {
        **result,
        "mode": "webhook" if args.webhook else "polling",
        "load": scenarios.opts_label(opts),
        "machine": scenarios.machine(),
    }
    print(json.dumps(result) if args.json else report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
