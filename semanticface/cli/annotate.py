"""`semanticface annotate`: serve the browser app in which people rank rendered candidates."""

from __future__ import annotations

import argparse
import ipaddress
import sys

from semanticface.errors import ConfigError
from semanticface.extras import require


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--candidates", required=True, help="candidate directory (with manifest.jsonl)")
    parser.add_argument("--db", required=True, help="SQLite file the rankings are stored in (created if absent)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME[:PORT]",
        help="also accept requests whose Host header is this name (repeatable; e.g. the machine's name on the "
        "network or a reverse proxy's). Loopback names and the bound address are always accepted; anything "
        "else gets 400, so a web page elsewhere cannot reach the app by DNS rebinding",
    )
    order = parser.add_mutually_exclusive_group()
    order.add_argument(
        "--shuffle-seed", type=int, default=0,
        help="seed of the candidate order, shuffled per item and annotator (stored with each ranking; default: 0)",
    )  # fmt: skip
    order.add_argument(
        "--no-shuffle", dest="shuffle_seed", action="store_const", const=None,
        help="show candidates in the manifest order (the model's own output first: biases people)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    require("flask", "the annotation app")
    from semanticface.preferences.app import header_host_name, make_annotation_server
    from semanticface.preferences.manifest import CandidateSet
    from semanticface.preferences.storage import RankingStore

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be 0-65535, got {args.port}")
    candidates = CandidateSet.load(args.candidates)
    store = RankingStore(args.db)
    try:
        loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = args.host == "localhost"
    if not loopback:
        print(f"warning: serving on {args.host}: anyone who can reach it can read the images and submit rankings",
              file=sys.stderr)  # fmt: skip
    try:
        server = make_annotation_server(
            candidates, store, args.host, args.port, allowed_hosts=args.allowed_host, shuffle_seed=args.shuffle_seed
        )
    except OSError as error:
        raise ConfigError(f"cannot listen on {args.host}:{args.port} ({error.strerror or error})") from None
    print(f"{len(candidates)} items, rankings in {store.path}")
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else header_host_name(args.host)
    print(f"open http://{shown}:{server.server_port}/?annotator=YOUR_NAME   (Ctrl+C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    print(f"{store.count()} rankings stored")
    return 0
