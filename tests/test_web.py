"""Plain HTTP on the WebSocket port: the page, the health check, 404, and the page's URL."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

import pytest

from chatbot import serve
from chatbot.web import NOT_FOUND, page, page_url


def request(url: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
    try:
        with direct.open(urllib.request.Request(url, method=method), timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


async def test_the_page_health_check_and_404_share_the_websocket_port() -> None:
    async with serve(port=0) as server:
        base = server.http_url.rstrip("/")
        results = await asyncio.gather(
            *(
                asyncio.to_thread(request, base + path, method)
                for path, method in [
                    ("/", "GET"),
                    ("/?token=abc", "GET"),
                    ("/index.html", "GET"),
                    ("/", "HEAD"),
                    ("/healthz", "GET"),
                    ("/nope", "GET"),
                    ("/", "POST"),
                ]
            )
        )
    (page_, query, index, head, health, missing, post) = results
    assert page_[0] == 200 and page_[1]["Content-Type"] == "text/html; charset=utf-8"
    assert page_[2] == page() and page_[2].lower().startswith(b"<!doctype html>")
    assert query[2] == index[2] == page()  # routed on the path, without the query string
    assert head[0] == 200 and head[2] == b"" and head[1]["Content-Length"] == str(len(page()))
    assert health[:1] == (200,) and health[2] == b"ok\n"
    assert missing[0] == 404 and missing[2].decode() == NOT_FOUND
    assert post[0] == 404


def test_page_url_is_local_or_behind_the_hub_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX", raising=False)
    assert page_url(8000) == "http://127.0.0.1:8000/"
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ada/")
    assert page_url(8000) == "/user/ada/proxy/8000/"
