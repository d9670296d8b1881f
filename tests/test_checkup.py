"""The machine check (``python -m chatbot doctor``): each check against the real thing."""

from __future__ import annotations

import asyncio
import importlib
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import chatbot.cli
from chatbot.workshop.checkup import (
    Check,
    check_hub,
    check_machine,
    check_port,
    check_proxies,
    check_redis,
)
from tests.helpers import ROOT

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def squatter() -> Iterator[int]:
    """A port held by another program: a plain listening socket."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.what: check for check in checks}


async def python(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run ``python ARGS`` in the repository; return its exit status and its output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=ROOT,
        env=env,
    )
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_the_command_on_this_machine_finds_it_ready(squatter: int) -> None:
    # The port asked for is taken, so the report warns; everything else is as CI installs it:
    # the packages, jupyter-server-proxy, Chromium.
    status, out = await python("-m", "chatbot", "doctor", "--port", str(squatter))
    assert status == 0, out
    lines = out.splitlines()
    for what in ("Python", "packages", "redis-server", "page", "chat", "browser"):
        assert any(line.startswith(f"OK    {what}: ") for line in lines), (what, out)
    assert any(line.startswith(f"WARN  port: 127.0.0.1:{squatter} is in use") for line in lines)
    assert "answered in plain text" in out and "in chatbot.v1" in out
    assert "loaded the page and connected" in out
    assert lines[-1] == "Ready, with 1 warning(s) worth reading."


async def test_an_unknown_brain_fails_with_exit_status_1() -> None:
    status, out = await python("-m", "chatbot", "doctor", "--port", "0", "--brain", "nonesuch")
    assert status == 1
    assert "FAIL  brain: " in out and "nonesuch" in out
    assert out.splitlines()[-1].startswith("1 problem(s)")


def test_a_taken_port_names_the_next_free_one(squatter: int) -> None:
    check = check_port(squatter)
    assert check.status == "warn"
    # The port it names is one a server can really listen on.
    named = int(check.detail.split("will use port ")[1].split(";")[0])
    assert named > squatter
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", named))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
    assert check_port(free) == Check("ok", "port", f"127.0.0.1:{free} is free")


def test_a_proxy_that_catches_loopback_is_reported(
    no_proxy_environment: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert check_proxies().status == "ok"
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9/")
    check = check_proxies()
    assert check.status == "warn"
    assert "https=http://127.0.0.1:9/" in check.detail
    assert "NO_PROXY=127.0.0.1,localhost" in check.detail
    monkeypatch.setenv("NO_PROXY", "127.0.0.1, localhost")
    assert check_proxies().status == "ok"


async def test_the_server_checks_pass_behind_a_proxy_that_does_not_exist(
    no_proxy_environment: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Port 9 (discard) on loopback: nothing listens. A client that trusted the environment would
    # fail; the check's own clients go direct, as the notebooks' do.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9/")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9/")
    checks = by_name(await check_machine(0))
    assert checks["proxies"].status == "warn"
    assert checks["page"].status == "ok"
    assert checks["chat"].status == "ok"


def test_on_a_hub_the_page_is_behind_jupyter_server_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX", raising=False)
    assert check_hub(8000).detail == "not on a hub: the page will be at http://127.0.0.1:8000/"
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ada/")
    check = check_hub(8000)
    assert check.status == "ok"
    assert "/user/ada/proxy/8000/" in check.detail


async def test_on_a_hub_without_jupyter_server_proxy_the_check_fails() -> None:
    # As on a hub where it was never installed: the import fails.
    env = {**os.environ, "JUPYTERHUB_SERVICE_PREFIX": "/user/ada/"}
    code = (
        "import sys; sys.modules['jupyter_server_proxy'] = None; "
        "from chatbot.workshop.checkup import check_hub; print(check_hub(8000))"
    )
    status, out = await python("-c", code, env=env)
    assert status == 0, out
    assert out.startswith("FAIL  JupyterHub: on a hub, but jupyter-server-proxy is not installed")


async def test_a_websockets_of_another_major_version_fails(tmp_path: Path) -> None:
    # An older websockets installed first on the path, as pip leaves it in a stale environment:
    # its metadata is what importlib.metadata finds first.
    info = tmp_path / "websockets-16.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: websockets\nVersion: 16.0\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    code = "from chatbot.workshop.checkup import check_packages; print(check_packages()[0])"
    status, out = await python("-c", code, env=env)
    assert status == 0, out
    assert out.startswith("FAIL  packages: websockets 16.0 (the workshop is written for 17.x)")
    assert out.strip().endswith("run pip install -r requirements.txt")


def test_without_redis_server_notebook_08_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert check_redis().status == "ok"  # installed here, as .ci/run does
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH with no redis-server on it
    check = check_redis()
    assert check.status == "warn"
    assert "notebook 08" in check.detail and "apt-get install redis-server" in check.detail


def test_the_machine_check_is_the_checkup_and_only_the_command_says_doctor() -> None:
    # `python -m chatbot doctor` is the command (the README's); behind it, names that say what
    # they are. "doctor" is left to ELIZA's script.
    assert hasattr(chatbot.cli, "checkup_main") and not hasattr(chatbot.cli, "doctor")
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("chatbot.doctor")
