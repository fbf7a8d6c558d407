"""Mirroring to Kaiban: the KaibanJS team state for the Kaiban Board, the Kaiban.io connector, the webhook."""

from __future__ import annotations
