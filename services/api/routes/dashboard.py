"""The web dashboard: static files at ``/dashboard/``. They need no key; every data call the page makes sends one."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent.parent / "dashboard"

router = APIRouter(include_in_schema=False)


class _Static(StaticFiles):
    """Static files that browsers revalidate, so an upgraded API serves its own page."""

    async def get_response(self, path, scope):
        response = await super().get_response(path, scope)
        response.headers.setdefault("Cache-Control", "no-cache")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response


@router.get("/")
async def home() -> RedirectResponse:
    return RedirectResponse("/dashboard/")


def install(app: FastAPI) -> None:
    """Serve the dashboard and redirect ``/`` to it; neither appears in the OpenAPI document."""
    app.include_router(router)
    app.mount("/dashboard", _Static(directory=STATIC, html=True), name="dashboard")
