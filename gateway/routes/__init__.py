"""One module per route resource; `v1` is mounted under /v1 behind the API key check."""

from fastapi import APIRouter

from gateway.routes import chat, completions, models

v1 = APIRouter()
v1.include_router(chat.router)
v1.include_router(completions.router)
v1.include_router(models.router)
