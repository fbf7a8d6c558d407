"""The board web app: REST API, WebSocket push from one shared watch, the board and report pages."""

from __future__ import annotations
