"""The bare baseline: the smallest FastAPI app that answers GET /healthz like malipo does.

    python -m uvicorn bench.baseline_app:app --port 8001 --log-level warning --no-access-log

No middleware, no response model, no logging, no metrics: what FastAPI,
Starlette and uvicorn cost on their own, measured in the same run as malipo so
that the ratio between the two is malipo's own per-request overhead.
``starlette_app`` is the same route without FastAPI, to see what FastAPI adds.
"""

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@app.get("/healthz", response_model=None)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _starlette_healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


starlette_app = Starlette(routes=[Route("/healthz", _starlette_healthz)])
