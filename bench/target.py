"""What the bench launches: a target is a command, its environment and how many processes of it.

The bot under test is `passgram run` unmodified, the floor is bench/echo.py; both are told where
the Bot API stand-in is through TELEGRAM_API_URL, as a deployment is told where Telegram is.
CPU time and memory are read from /proc (Linux), summed over the target's processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")
# Settings a developer's shell may hold for a real bot: the bench sets its own.
_SETTINGS = (
    "TELEGRAM_",
    "DATABASE_URL",
    "REDIS_URL",
    "PASSGRAM_",
    "AUTH_BACKEND",
    "SMTP_",
    "EMAIL_FROM",
    "TWILIO_",
    "CLERK_",
    "WEBHOOK_",
    "LOCAL_",
    "DEV_DELIVERY",
    "APP_NAME",
    "LOG_LEVEL",
)


_ROOT = str(Path(__file__).resolve().parent.parent)


def base_env() -> dict[str, str]:
    """This environment without bot settings; `bench` importable from any working directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SETTINGS)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_ROOT, env.get("PYTHONPATH")]))
    return env


@dataclass(frozen=True)
class Target:
    name: str
    command: Sequence[str]
    env: dict[str, str] = field(default_factory=dict)
    # One entry per process, with the settings that process alone has (a replica's port).
    each: Sequence[dict[str, str]] = ({},)

    @property
    def listeners(self) -> list[str]:
        """The webhook listeners' base URLs, one per process, in webhook mode."""
        return [
            "http://" + (self.env | own)["WEBHOOK_LISTEN"]
            for own in self.each
            if "WEBHOOK_LISTEN" in self.env | own
        ]


def passgram(env: dict[str, str], each: Sequence[dict[str, str]] = ({},)) -> Target:
    framework = env.get("TELEGRAM_FRAMEWORK", "aiogram")
    name = "passgram" if framework == "aiogram" else f"passgram-{framework}"
    if len(each) > 1:
        name += f"-{len(each)}-replicas"
    return Target(name, [sys.executable, "-m", "bot", "run"], env, each)


def echo(env: dict[str, str]) -> Target:
    return Target("echo", [sys.executable, "-m", "bench.echo"], env)


class Launched:
    """A target's running processes; their output goes to `log_dir`."""

    def __init__(self, target: Target, log_dir: Path, cwd: Path) -> None:
        self.target = target
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        for n, own in enumerate(target.each):
            log = log_dir / f"{target.name}-{n}.log"
            self.logs.append(log)
            with log.open("wb") as out:
                self.procs.append(
                    subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                        list(target.command),
                        env=base_env() | target.env | own,
                        cwd=cwd,
                        stdout=out,
                        stderr=out,
                    )
                )

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def exited(self) -> str | None:
        """Why a process ended early (the tail of its log), or None while all run."""
        for proc, log in zip(self.procs, self.logs, strict=True):
            if proc.poll() is not None:
                tail = log.read_text(errors="replace").strip().splitlines()[-5:]
                return f"{self.target.name} exited with {proc.returncode}: " + " | ".join(tail)
        return None

    def cpu_seconds(self) -> float:
        total = 0
        for pid in self.pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / _TICKS

    def memory(self, key: str) -> int:
        """VmRSS (now) or VmHWM (peak) in bytes, summed over the processes."""
        total = 0
        for pid in self.pids:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    total += int(line.split()[1]) * 1024
        return total

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
