"""Which transition listeners the dashboard runs: built from its options and the PRD config's
`kaiban` section (api_url, webhook_url). Nothing configured -> no listener, no outbound traffic."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from ..errors import InvalidInput
from ..kaiban.connector import KaibanConnector
from ..kaiban.webhook import WebhookMirror
from ..notify import EmailSender, Notifier, Sender, SlackSender
from .hub import Listener

Secret = Callable[[Path | None, str], str | None]


def smtp_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise InvalidInput(f"--smtp {text!r}: expected HOST:PORT, e.g. localhost:25")
    return host, int(port)


def listeners_from(args: argparse.Namespace, config: Any, secret: Secret) -> list[Listener]:
    kaiban = getattr(config, "kaiban", None)
    client = httpx.AsyncClient(timeout=10.0)
    listeners: list[Listener] = []
    api_url = args.kaiban_api_url or getattr(kaiban, "api_url", None)
    if api_url:
        token = secret(args.kaiban_token_file, "--kaiban-token-file")
        if token is None:
            raise InvalidInput("--kaiban-token-file: required when a Kaiban API URL is configured")
        listeners.append(KaibanConnector(api_url, token, client, args.kaiban_board_id))
    webhook = args.webhook_url or getattr(kaiban, "webhook_url", None)
    if webhook:
        listeners.append(
            WebhookMirror(webhook, secret(args.webhook_secret_file, "--webhook-secret-file"), client)
        )
    senders: list[Sender] = []
    slack = secret(args.slack_webhook_file, "--slack-webhook-file")
    if slack:
        senders.append(SlackSender(slack, client))
    if args.smtp:
        if not args.email_to:
            raise InvalidInput("--email-to: at least one recipient is needed with --smtp")
        host, port = smtp_address(args.smtp)
        senders.append(EmailSender(host, port, args.email_from, args.email_to))
    if senders:
        listeners.append(Notifier(senders, args.public_url))
    return listeners
