"""The baseline for the throughput benchmark: one FastAPI route, served like ``portal serve`` serves the portal.

Run alone with ``python -m bench.bare_app --port 8001`` (or ``python bench/bare_app.py --port 8001``).
The uvicorn options mirror ``portal.cli.serve`` (one worker, uvicorn's default loop and HTTP parser, which
with ``uvicorn[standard]`` are uvloop and httptools), so the only difference measured is the application.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fastapi import FastAPI

BODY = {"status": "ok", "service": "bare"}

app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


@app.get("/bare")
async def bare() -> dict[str, str]:
    return BODY


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:  # script form: make ``bench.bare_app`` importable for uvicorn
        sys.path.insert(0, root)
    uvicorn.run(
        "bench.bare_app:app",
        host="127.0.0.1",  # loopback only
        port=args.port,
        workers=1,
        factory=False,
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1,::1",
        log_level="warning",
        server_header=False,
        ws_max_size=1024 * 1024,
    )


if __name__ == "__main__":
    main()
