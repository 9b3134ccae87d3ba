"""The soak's workers: `nhiguard worker` processes, each under a supervisor thread that starts it again
whenever it exits (compose's `restart: unless-stopped`: exit 70, a crash, a kill, a graceful stop alike),
until the soak stops it. Each has its own data dir (NHIGUARD_DATA_DIR: its RocksDB tables)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from nhiguard.settings import Settings
from tools.demo import worker_env

RESTART_DELAY_S = 1.0  # as a supervisor's restart back-off


class Slot:
    def __init__(
        self, name: str, settings: Settings, run_dir: Path, env: dict[str, str], note: Callable[[str], None]
    ) -> None:
        self.name = name
        self.data_dir = run_dir / f"{name}-data"
        self.env = worker_env(replace(settings, data_dir=self.data_dir)) | env
        self.log_path = run_dir / f"{name}.log"
        self.note = note
        self.proc: subprocess.Popen[bytes] | None = None
        self.stopped = threading.Event()
        self.stopped.set()  # not started yet
        self.paused = threading.Event()  # while set, an exited worker is not started again
        self.starts = 0
        self.exits: Counter[int] = Counter()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def alive(self) -> bool:
        p = self.proc
        return p is not None and p.poll() is None

    def start(self) -> None:
        if not self.stopped.is_set():
            return
        if self._thread is not None:
            self._thread.join()
        self.stopped.clear()
        self._thread = threading.Thread(target=self._supervise, daemon=True, name=f"soak-{self.name}")
        self._thread.start()

    def _supervise(self) -> None:
        while not self.stopped.is_set():
            while self.paused.is_set() and not self.stopped.is_set():
                time.sleep(0.1)
            with self._lock:
                if self.stopped.is_set():
                    return
                with open(self.log_path, "ab") as log:
                    log.write(f"\n===== soak: start {self.starts + 1} of {self.name} =====\n".encode())
                    log.flush()
                    # Its own process group: a kill or a stall reaches the engine children too.
                    self.proc = subprocess.Popen(
                        [sys.executable, "-m", "nhiguard.streams.cli", "worker"],
                        env=self.env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                self.starts += 1
                proc = self.proc
            rc = proc.wait()
            self.exits[rc] += 1
            self._reap(proc)
            if rc not in (0, -signal.SIGKILL, -signal.SIGTERM) and not self.stopped.is_set():
                self.note(f"{self.name} exited with {rc}: started again")
            time.sleep(RESTART_DELAY_S)

    @staticmethod
    def _reap(proc: subprocess.Popen[bytes]) -> None:
        # Engine children left behind by a worker that died go with it, as they would with its container.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    def signal(self, sig: signal.Signals, group: bool) -> str:
        """Send `sig` to the running worker (waiting up to 120 s for one to be running); says to which pid."""
        deadline = time.monotonic() + 120
        while not self.alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        p = self.proc
        if p is None or p.poll() is not None:
            return "no worker running"
        with contextlib.suppress(ProcessLookupError):
            (os.killpg if group else os.kill)(p.pid, sig)
        return f"pid {p.pid}"

    def restart_without_state(self) -> None:
        """SIGKILL the worker and delete its data dir before it is started again (a replacement worker)."""
        self.paused.set()
        try:
            self.signal(signal.SIGKILL, group=True)
            with self._lock:  # the supervisor is between two starts
                p = self.proc
                if p is not None:
                    p.wait()
                    self._reap(p)
                shutil.rmtree(self.data_dir, ignore_errors=True)
        finally:
            self.paused.clear()

    def stop(self, timeout: float = 90) -> None:
        """SIGTERM, not started again (SIGKILL after `timeout` s)."""
        self.stopped.set()
        with self._lock:
            p = self.proc
        if p is not None and p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGCONT)  # a stalled worker cannot stop
                p.terminate()
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.note(f"{self.name} did not stop within {timeout:g}s: SIGKILL")
                p.kill()
                p.wait()
        if p is not None:
            self._reap(p)
        if self._thread is not None:
            self._thread.join(10)
