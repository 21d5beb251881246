"""`dsp-deploy serve` as a child process on free 127.0.0.1 ports, for the load benchmark and tests."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from dsp_deploy.serving.load import wait_ready

PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port nothing listens on right now (127.0.0.1)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServeProcess:
    """``python -m dsp_deploy serve SOURCES ...``; its output goes to ``log``."""

    def __init__(self, sources: Sequence[str], log: Path, extra: Sequence[str] = ()) -> None:
        self.http, self.grpc = free_port(), free_port()
        self.http_url, self.grpc_url = f"127.0.0.1:{self.http}", f"127.0.0.1:{self.grpc}"
        self.log = log
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(PACKAGE_ROOT),
                                                                        os.environ.get("PYTHONPATH")]))}
        with log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dsp_deploy", "serve", *sources, "--http-port", str(self.http),
                 "--grpc-port", str(self.grpc), *extra], stdout=out, stderr=subprocess.STDOUT, env=env)

    def wait_ready(self, models: Sequence[str], timeout_s: float = 180) -> None:
        """Block until every model answers ready (ServingError if the process exits or time runs out)."""
        wait_ready(self.http_url, models, timeout_s, alive=lambda: self.proc.poll() is None)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 60) -> int:
        """Signal the server and wait for it (killed after ``timeout_s``); returns its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode
