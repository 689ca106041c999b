"""The tuspyserver peer: its FastAPI router on an app, files in $TUSPY_DIR. Run by the benchmark under uvicorn
in its own venv (benchmarks/.peers/tuspyserver); it is not part of tusedge and not imported by it."""

from __future__ import annotations

import os

from fastapi import FastAPI  # type: ignore[import-not-found]
from tuspyserver import create_tus_router  # type: ignore[import-not-found]

app = FastAPI()
app.include_router(create_tus_router(prefix="files", files_dir=os.environ.get("TUSPY_DIR", "/tmp/tuspy")))
