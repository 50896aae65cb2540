"""How many phones a party holds: N simulated Sendspin listeners against W workers.

    python -m bench.listeners --listeners 50 --workers 2 --seconds 20
    python -m bench.listeners --sweep                 # N = 10, 25, 50, 100; W = 1 and 2

Everything heavy is imported inside main(): the party's processes are spawned, and spawn
re-imports this module in each of them, which should cost them nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.listeners",
        description="Connect simulated Sendspin listeners over loopback and measure the party.",
    )
    parser.add_argument("--listeners", "-n", type=int, default=50, help="listeners (default 50)")
    parser.add_argument("--workers", "-w", type=int, default=2, help="worker processes (2)")
    parser.add_argument(
        "--seconds", "-s", type=float, help="measured window per run (20; 10 with --sweep)"
    )
    parser.add_argument(
        "--codec", choices=["pcm", "flac"], default="pcm", help="what listeners ask for (pcm)"
    )
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="run every --sizes with W=1 and W=2 side by side (ignores --listeners/--workers)",
    )
    parser.add_argument(
        "--sizes", default="10,25,50,100", help="listener counts for --sweep (10,25,50,100)"
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=0.05,
        help="share of the window's audio a held listener may miss (0.05)",
    )
    parser.add_argument("--no-decode", action="store_true", help="skip the decode-speed table")
    args = parser.parse_args(argv)
    if args.seconds is None:
        args.seconds = 10.0 if args.sweep else 20.0
    try:
        args.sizes = [int(s) for s in str(args.sizes).split(",") if s.strip()]
    except ValueError:
        parser.error("--sizes takes comma-separated whole numbers, e.g. 10,25,50")
    if args.listeners < 1 or any(s < 1 for s in args.sizes):
        parser.error("listener counts must be at least 1")
    if not 1 <= args.workers <= 16:
        parser.error("--workers must be between 1 and 16")
    if not 1 <= args.seconds <= 600:
        parser.error("--seconds must be between 1 and 600")
    if not 0 <= args.tolerance < 1:
        parser.error("--tolerance must be at least 0 and below 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from bench.session import run
    from server.control import PartyError

    try:
        return asyncio.run(run(args))
    except PartyError as exc:
        print(f"the party failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
