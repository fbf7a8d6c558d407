"""`sprintctl dashboard --port N [--namespace NS] [--token-file F] [--read-token-file R]`: the board web app
and REST API.

One process, one watch per kind on the namespace, shared by every browser. The same process mirrors
board moves to Kaiban.io / a webhook and sends notifications (Slack, email) when configured, so the
operator does not have to.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from .. import settings as settings_module
from ..errors import InvalidInput

HELP = "serve the live board, the REST API and Kaiban mirroring"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a Pod)")
    parser.add_argument("--namespace", "-n", default="default")
    parser.add_argument("--kubeconfig", default=None)
    parser.add_argument("--token-file", type=Path, default=None, help="bearer tokens for actions, one a line")
    parser.add_argument(
        "--read-token-file",
        type=Path,
        default=None,
        help="tokens reads need (default: open)",
    )
    parser.add_argument(
        "--operator-url",
        default=None,
        help="the operator's diff endpoint (SPRINT_ORCHESTRATOR_DIFF_PORT), where this dashboard has no "
        "clone, e.g. in its own Pod",
    )
    parser.add_argument(
        "--operator-token-file", type=Path, default=None, help="the token of that endpoint (required with it)"
    )
    group = parser.add_argument_group("mirroring and notifications (all optional)")
    group.add_argument("--kaiban-api-url", default=None, help="Kaiban.io API (default: kaiban.api_url)")
    group.add_argument("--kaiban-token-file", type=Path, default=None)
    group.add_argument("--kaiban-board-id", default=None, help="the Kaiban.io board to mirror into")
    group.add_argument(
        "--webhook-url", default=None, help="signed card-move POSTs (default: kaiban.webhook_url)"
    )
    group.add_argument("--webhook-secret-file", type=Path, default=None, help="HMAC-SHA256 key")
    group.add_argument("--slack-webhook-file", type=Path, default=None, help="file holding the Slack URL")
    group.add_argument("--smtp", default=None, help="HOST:PORT of an SMTP server for email")
    group.add_argument("--email-from", default="sprint-orchestrator@localhost")
    group.add_argument("--email-to", action="append", default=[], help="repeat for several recipients")
    group.add_argument("--public-url", default=None, help="base URL of this dashboard, for links")


def secret(path: Path | None, option: str) -> str | None:
    if path is None:
        return None
    try:
        value = path.read_text().strip()
    except OSError as exc:
        raise InvalidInput(f"{option} {path}: cannot read it ({exc.strerror})") from exc
    if not value:
        raise InvalidInput(f"{option} {path}: the file is empty")
    return value


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from ..kube import Kube
    from ..web.app import create_app
    from ..web.context import Dashboard, load_tokens
    from ..web.hub import Hub
    from ..web.wiring import listeners_from

    settings = settings_module.from_env()
    tokens = load_tokens(args.token_file)  # options first: a typo fails before any connection
    read_tokens = load_tokens(args.read_token_file, "--read-token-file")
    listeners = listeners_from(args, settings.config, secret)
    if args.operator_url and not args.operator_token_file:
        raise InvalidInput("--operator-token-file: required with --operator-url")
    token_file = args.operator_token_file  # an optional Secret not created yet: diffs say so (503)
    operator_token = (
        secret(token_file, "--operator-token-file") if token_file and token_file.exists() else None
    )
    dash = Dashboard(
        Kube.from_kubeconfig(args.kubeconfig),
        Hub(args.namespace),
        tokens,
        read_tokens,
        (settings.state_dir,),
        settings.trees_dir,
        settings.repository_url,
        args.operator_url,
        operator_token,
        str(token_file or ""),
    )
    app = create_app(dash, listeners)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", ws="websockets")
    print(f"dashboard on http://{args.host}:{args.port}/ (namespace {args.namespace})", flush=True)
    asyncio.run(uvicorn.Server(config).serve())
    return 0
