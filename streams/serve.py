"""`nhiguard serve`: the command line of nhiguard's one HTTP process (streams/server.py). Light to import:
the CLI registers it for every command it runs, and aiohttp is loaded only when it serves."""

from __future__ import annotations

import argparse


def _serve(args: argparse.Namespace) -> int:
    from nhiguard.settings import load_settings
    from nhiguard.streams.server import run_serve

    return run_serve(load_settings(), args.host, args.port)


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:  # type: ignore[type-arg]
    """Register `nhiguard serve`. Its secrets come from the environment (README, Webhook receiver and Decision
    API, SSF / CAEP), never from arguments: those are visible to every user of the host."""
    p = sub.add_parser(
        "serve",
        parents=parents,
        help="receive signed webhooks (GitHub, GitLab, Contentful, Strapi, Verdaccio) onto the input topics, "
        "answering 2xx only once Kafka has them; the decision API (POST /v1/decisions); and the SSF/CAEP "
        "transmitter (each signed REVOKE pushed as a Security Event Token)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    p.set_defaults(func=_serve)
