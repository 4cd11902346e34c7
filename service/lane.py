"""The fast lane for POST /search: the route's own endpoint, called by a middleware just inside
the app's body limit and metrics, without FastAPI's router and exception middleware in between.

A one-query search over 100k documents takes about 0.65 ms in FAISS; route matching, the
exception middleware's send wrappers and the per-request exit stacks added a fifth of the 0.5 ms
that HTTP cost on top (py-spy, ``bench/service.py``). The endpoint already reads its parameters,
access and body by hand (``routers.search``), so the lane calls it directly, and maps what it
raises with the app's own exception handlers, so a 4xx says the same either way; what no handler
takes goes on to Starlette's error middleware (a 500), as from any route. Every other request goes
down the usual stack.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send


class SearchLane:
    """ASGI middleware: a ``POST`` to ``route``'s path runs its endpoint (a ``Request -> Response``
    coroutine) directly; everything else runs ``app``, the rest of the stack."""

    def __init__(self, app: ASGIApp, *, fastapi_app: FastAPI, route: APIRoute) -> None:
        self.app, self.fastapi_app, self.route = app, fastapi_app, route
        self.path, self.endpoint = route.path, route.endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        scope["route"], scope["endpoint"] = self.route, self.endpoint  # what the router would set (metrics read it)
        request = Request(scope, receive)
        try:
            response = await self.endpoint(request)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise
            response = await handler(request, exc)
        await response(scope, receive, send)

    def _handler(self, exc: Exception):
        """The app's handler for ``exc``'s class or its nearest base, looked up as Starlette does."""
        handlers = self.fastapi_app.exception_handlers
        return next((handlers[c] for c in type(exc).__mro__ if c in handlers), None)
