"""kopf handlers: thin glue that reads resources, asks the pure core what to do, and acts.

Importing this package registers every handler with kopf (`kopf run -m sprint_orchestrator.handlers`).
"""

from __future__ import annotations

from . import finalize, observe, setup, sprints, tasks

__all__ = ["finalize", "observe", "setup", "sprints", "tasks"]
