"""PURE: agent avatars drawn here, so the board never loads an image from the network.

kaiban-board draws each agent with an <img> from an avatar web service; our build of the app points it
at `/avatars/{name}` instead (hack/build-kaiban-board.sh), and this draws a small SVG: the name's
initials on a colour picked from its hash. The same name always gets the same picture.
"""

from __future__ import annotations

import hashlib
import html
import re

_PALETTE = ("#4f46e5", "#0891b2", "#059669", "#d97706", "#dc2626", "#7c3aed", "#db2777", "#475569")


def initials(name: str) -> str:
    """'so-textstats-1-words-1' -> 'SW' (first and last word), 'Kai' -> 'KA', '' -> '?'."""
    words = [w for w in re.split(r"[^A-Za-z0-9]+", name) if w and not w.isdigit()]
    if len(words) >= 2:
        return (words[0][0] + words[-1][0]).upper()
    return (words[0][:2] if words else "?").upper()


def avatar_svg(name: str) -> str:
    name = name[:200]
    colour = _PALETTE[hashlib.sha256(name.encode()).digest()[0] % len(_PALETTE)]
    text = html.escape(initials(name))
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">'
        f'<rect width="64" height="64" rx="32" fill="{colour}"/>'
        '<text x="32" y="41" font-family="sans-serif" font-size="24" font-weight="700" fill="#fff" '
        f'text-anchor="middle">{text}</text></svg>'
    )
