"""Console context: the operator's web pages on the ``admin`` role (``/console``).

Server-rendered HTML over the admin service -- another door to the same operations as the
admin HTTP API and the CLI, each action audited the same way -- behind a session opened with
an admin bearer token, every form CSRF-protected. No script, nothing loaded from elsewhere.
"""

from __future__ import annotations

from exchange.console._context import ConsoleContext
from exchange.console._router import console_router, console_templates
from exchange.console._session import ConsoleSession, Cookies, SessionCodec

__all__ = ("ConsoleContext", "ConsoleSession", "Cookies", "SessionCodec", "console_router", "console_templates")
