"""`passgram sandbox` as a person runs it: prints where to go, serves the page, stops on Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

STARTUP = 60.0  # seconds; a cold start imports the whole bot


@dataclass
class Command:
    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)

    async def line_matching(self, pattern: str) -> re.Match[str]:
        assert self.process.stdout is not None
        while True:
            raw = await asyncio.wait_for(self.process.stdout.readline(), STARTUP)
            assert raw, f"exited before printing {pattern!r}; printed {self.lines}"
            self.lines.append(raw.decode())
            if found := re.search(pattern, self.lines[-1]):
                return found

    async def stop(self, sig: signal.Signals) -> tuple[int, str, str]:
        self.process.send_signal(sig)
        out, err = await asyncio.wait_for(self.process.communicate(), 30)
        assert self.process.returncode is not None
        return self.process.returncode, "".join(self.lines) + out.decode(), err.decode()


def environment(**extra: str) -> dict[str, str]:
    # Only the basics: a developer's own settings must not change what the command does.
    clean = {k: v for k, v in os.environ.items() if not k.isupper() or k in ("PATH", "HOME")}
    return clean | extra


@asynccontextmanager
async def sandbox_command(*args: str, cwd: Path, **env: str) -> AsyncIterator[Command]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "sandbox", "--no-browser", *args,
        cwd=cwd,
        env=environment(**env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    command = Command(process)
    try:
        yield command
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_serves_the_page_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with sandbox_command(
        "--port", "0", "--data-dir", str(data), cwd=tmp_path, APP_NAME="Globex"
    ) as command:
        url = (await command.line_matching(r"(http://127\.0\.0\.1:\d+/)")).group(1)
        where = (await command.line_matching(r"Data\s+(.+) \(kept\)")).group(1)
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as response:
                assert response.status == 200
            async with http.get(f"{url}api/state") as response:
                state = await response.json()
        assert state["app_name"] == "Globex"
        code, out, err = await command.stop(signal.SIGINT)
    assert code == 0, err
    assert "Sandbox stopped." in out
    assert Path(where) == data
    assert await asyncio.to_thread((data / "passgram.db").is_file)  # a named data dir is kept


async def test_a_busy_port_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        async with sandbox_command("--port", port, cwd=tmp_path) as command:
            out, err = await asyncio.wait_for(command.process.communicate(), STARTUP)
    assert command.process.returncode == 2
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"passgram: can't listen on 127.0.0.1:{port}"), lines
    assert "http://" not in out.decode()


async def test_with_the_clerk_double_and_a_temporary_dir_removed_on_sigterm(
    tmp_path: Path,
) -> None:
    async with sandbox_command("--port", "0", "--backend", "clerk-double", cwd=tmp_path) as command:
        url = (await command.line_matching(r"(http://127\.0\.0\.1:\d+/)")).group(1)
        where = Path((await command.line_matching(r"Data\s+(.+) \(a temporary")).group(1))
        await command.line_matching(r"Auth\s+Clerk")
        assert await asyncio.to_thread((where / "passgram.db").is_file)
        async with aiohttp.ClientSession() as http, http.get(f"{url}api/state") as response:
            assert response.status == 200
        code, _, err = await command.stop(signal.SIGTERM)
    assert code == 0, err
    assert not await asyncio.to_thread(where.exists)
