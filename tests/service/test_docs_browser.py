"""``/docs`` and ``/redoc`` render in a real headless browser with no network: their Swagger UI
and ReDoc assets come with the package (fastapi-offline), not from a CDN."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from .conftest import free_port
from .test_server import start, wait_ready

pytestmark = pytest.mark.slow  # a real server and a browser

BROWSER = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


def dump_dom(url: str) -> str:
    """The page as the browser leaves it after running its scripts (8 s of virtual time)."""
    args = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=8000", "--dump-dom", url]
    return subprocess.run(args, capture_output=True, text=True, timeout=120).stdout


@pytest.mark.skipif(BROWSER is None, reason="no chromium on this machine (Debian: apt-get install chromium; "
                    "scripts/setup.sh installs it where it can)")
def test_docs_render_the_operations_offline(head_dir, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start([sys.executable, "-m", "smec_compress", "serve", "--head", str(head_dir), "--data-dir",
                  str(tmp_path / "data"), "--port", str(port)])
    try:
        wait_ready(proc, base)
        docs = dump_dom(f"{base}/docs")
        assert "opblock" in docs and "/search" in docs and "/documents" in docs  # Swagger UI drew the operations
        assert "cdn.jsdelivr.net" not in docs
        redoc = dump_dom(f"{base}/redoc")
        assert "/search" in redoc and "redoc" in redoc.lower()
    finally:
        proc.terminate()
        proc.wait(30)
