"""regopy out of process: a crash in the native engine costs one event, never the worker or a batch.

regopy (rego-cpp) is native code; some modules make every query on an interpreter segfault (README, "Policy
engine"). So evaluation runs in child processes, one compiled bundle each:

- a bundle is *trial-run* in a throwaway process (compiled, every case evaluated) before it is activated,
  and refused with the reason if that process dies or a case fails;
- a child that dies while evaluating is replaced, the batch retried once, then bisected to find the events
  that kill the engine: those are reported as `policy_engine_crash`, the rest are decided normally;
- a request that exceeds the deadline kills its child; the batch is split the same way and an event that
  alone exceeds the deadline is reported as `policy_engine_timeout`;
- a child that cannot be replaced (its start is refused, it dies loading the bundle, or it does not start in
  time) fails the whole query as `policy_engine_unavailable`; the next query tries to start one again;
- a child whose resident memory has grown past `max_rss_mb` is retired after answering and replaced the same
  way: regopy 1.5.2 keeps about 40 KB per evaluated event for the life of the process (a fresh Interpreter
  or a recompiled bundle does not give it back), so without this a worker's engine grows without bound.

The core decides each event reported so by its domain's failure mode (a gate fails closed).

Children are started with the `spawn` method: a fresh interpreter, no inherited native state. The child has
no test-only code path: a test that needs a child to crash or hang passes `child_wrap` (see `EnginePool`).
"""

from __future__ import annotations

import multiprocessing as mp
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from nhiguard.policy.bundle import BundleError, PolicyBundle, load_bundle
from nhiguard.policy.cases import run_cases
from nhiguard.policy.engines import (
    CRASH,
    ERROR,
    TIMEOUT,
    EngineUnavailable,
    Evaluate,
    EvaluationError,
    Failure,
    unavailable,
)
from nhiguard.policy.engines.regopy import RegoEvaluator
from nhiguard.policy.rule_index import answered

_ctx = mp.get_context("spawn")

# Wraps the child's evaluate function, in the child (tests use it to crash or hang the real process).
EvaluateWrapper = Callable[[Evaluate], Evaluate]


class EngineCrash(Exception):
    """The evaluator process died while answering."""


class EngineTimeout(Exception):
    """The evaluator process did not answer within the deadline."""


def _child(conn: Connection, bundle: PolicyBundle, wrap: EvaluateWrapper | None) -> None:
    try:
        evaluator = RegoEvaluator(bundle)
        evaluate = wrap(evaluator.evaluate) if wrap is not None else evaluator.evaluate
    except Exception as exc:  # reported to the parent, which refuses the bundle
        conn.send(("refused", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", evaluator.bundle.revision))
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        domain, inputs = msg
        try:
            conn.send(("ok", evaluate(domain, inputs)))
        except EvaluationError as exc:
            conn.send(("error", str(exc)))


class _Evaluator:
    """One child process and the pipe to it."""

    def __init__(self, bundle: PolicyBundle, wrap: EvaluateWrapper | None, start_timeout_s: float) -> None:
        self.conn, child_conn = _ctx.Pipe()
        self.proc = _ctx.Process(
            target=_child,
            # The loaded bundle itself, not its directory: a restart after a crash must serve the same
            # revision even if policies/ has changed on disk since.
            args=(child_conn, bundle, wrap),
            daemon=True,
            name="nhiguard-rego",
        )
        self.proc.start()
        child_conn.close()
        if not self.conn.poll(start_timeout_s):
            self.kill()
            raise BundleError(f"policy engine did not start within {start_timeout_s:.0f} s")
        try:
            kind, detail = self.conn.recv()
        except EOFError as exc:
            self.kill()
            raise BundleError(f"policy engine died loading the bundle (exit {self.proc.exitcode})") from exc
        if kind != "ready":
            self.kill()
            raise BundleError(detail)
        self.revision = detail

    def ask(self, domain: str, inputs: list[dict[str, Any]], timeout_s: float) -> list[list[dict[str, Any]]]:
        try:
            self.conn.send((domain, inputs))
            if not self.conn.poll(timeout_s):
                raise EngineTimeout(f"no answer within {timeout_s:.1f} s for {len(inputs)} events")
            kind, payload = self.conn.recv()
        except (EOFError, BrokenPipeError, ConnectionResetError) as exc:
            self.proc.join(5)
            raise EngineCrash(f"policy engine died (exit {self.proc.exitcode})") from exc
        if kind == "error":
            raise EvaluationError(payload)
        return payload

    def rss_mb(self) -> float:
        """The child's resident memory (0 when it cannot be read: no /proc, or the process is gone)."""
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return 0.0
        return next((int(ln.split()[1]) / 1024 for ln in status.splitlines() if ln.startswith("VmRSS:")), 0.0)

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
        self.conn.close()

    def close(self) -> None:
        try:
            self.conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        self.conn.close()


class EnginePool:
    """Evaluator processes for one bundle. Thread-safe: concurrent callers use different children.

    `child_wrap` is a test hook: every child, replacements included, evaluates through
    `child_wrap(evaluate)`, so a test can make the real process crash or hang on inputs it marks. It must be
    a module-level function (spawn pickles it by reference and the child imports its module); the worker
    never passes one. `max_rss_mb` (0: no bound) retires a child that has grown past it; `recycled` counts
    those.
    """

    def __init__(
        self,
        bundle: PolicyBundle,
        processes: int = 1,
        timeout_s: float = 10.0,
        start_timeout_s: float = 60.0,
        child_wrap: EvaluateWrapper | None = None,
        max_rss_mb: float = 0,
    ) -> None:
        self.bundle = bundle
        self.index = bundle.rule_index()  # inputs no policy can fire on never leave this process
        self.timeout_s = timeout_s
        self.max_rss_mb = max_rss_mb
        self.recycled = 0
        self._start = (bundle, child_wrap, start_timeout_s)
        self._lock = threading.Condition()
        self.restarts = 0
        self._free: list[_Evaluator | None] = []
        try:
            for _ in range(max(1, processes)):
                self._free.append(_Evaluator(*self._start))
        except BaseException:
            self.close()
            raise

    def _ask(self, domain: str, inputs: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        with self._lock:
            while not self._free:
                self._lock.wait()
            ev = self._free.pop()
        try:
            if ev is None:  # its predecessor died and could not be replaced then: try again now
                try:
                    ev = _Evaluator(*self._start)
                except BundleError as exc:
                    raise EngineUnavailable(f"policy engine could not be restarted: {exc}") from exc
            answer = ev.ask(domain, inputs, self.timeout_s)
            if self.max_rss_mb and ev.rss_mb() > self.max_rss_mb:
                ev.close()
                ev = None  # started afresh by the next caller, as after a crash
                with self._lock:
                    self.recycled += 1
            return answer
        except (EngineCrash, EngineTimeout):
            if ev is not None:
                ev.kill()
            ev = None  # replaced lazily by the next caller: a dead process is never handed out
            with self._lock:
                self.restarts += 1
            raise
        finally:
            with self._lock:
                self._free.append(ev)
                self._lock.notify()

    def evaluate(self, domain: str, inputs: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        if not inputs:
            return []
        return answered(self.index, domain, inputs, self._ask)

    def evaluate_isolating(
        self, domain: str, inputs: list[dict[str, Any]], _retried: bool = False
    ) -> tuple[list[list[dict[str, Any]] | None], dict[int, Failure]]:
        """Findings per input (None where it failed) and why each failed one failed."""
        try:
            return list(self.evaluate(domain, inputs)), {}
        except EngineUnavailable as exc:
            return unavailable(inputs, str(exc))
        except EvaluationError as exc:
            failure = Failure(ERROR, str(exc))
        except EngineCrash as exc:
            if not _retried:  # one retry of the whole batch on a fresh process: crashes can be transient
                return self.evaluate_isolating(domain, inputs, _retried=True)
            failure = Failure(CRASH, str(exc))
        except EngineTimeout as exc:
            if len(inputs) == 1:
                return [None], {0: Failure(TIMEOUT, str(exc))}
            # A hang is nearly always one event: one at a time, it costs the deadline once (bisecting a
            # batch of 500 would cost it about nine times), and every other event ~0.3 ms.
            found: list[list[dict[str, Any]] | None] = []
            failures: dict[int, Failure] = {}
            for i, one in enumerate(inputs):
                res, err = self.evaluate_isolating(domain, [one], _retried=True)
                found += res
                if 0 in err:
                    failures[i] = err[0]
            return found, failures
        if len(inputs) == 1:
            return [None], {0: failure}
        mid = len(inputs) // 2
        left, lerr = self.evaluate_isolating(domain, inputs[:mid], _retried=True)
        right, rerr = self.evaluate_isolating(domain, inputs[mid:], _retried=True)
        return left + right, {**lerr, **{i + mid: e for i, e in rerr.items()}}

    def close(self) -> None:
        with self._lock:
            for ev in self._free:
                if ev is not None:
                    ev.close()
            self._free.clear()


def trial_run(root: Path, timeout_s: float = 60.0, with_cases: bool = True) -> PolicyBundle:
    """Load a bundle, then compile it, query it and run its cases in a throwaway process; BundleError if not.

    The process that proves the bundle is not the one that will serve it: if rego-cpp crashes on the bundle,
    only the trial dies.
    """
    bundle = load_bundle(root)
    parent, child = _ctx.Pipe()
    proc = _ctx.Process(
        target=_trial_child, args=(child, str(root), with_cases), daemon=True, name="nhiguard-rego-trial"
    )
    proc.start()
    child.close()
    try:
        if not parent.poll(timeout_s):
            raise BundleError(f"bundle trial did not finish within {timeout_s:.0f} s")
        kind, detail = parent.recv()
    except EOFError as exc:
        proc.join(5)
        code = proc.exitcode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit {code}"
        raise BundleError(f"policy engine crashed while trying the bundle ({how}); bundle refused") from exc
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(5)
        parent.close()
    if kind != "ok":
        raise BundleError(detail)
    if detail != bundle.revision:
        raise BundleError("bundle changed on disk during its trial; try again")
    return bundle


def _trial_child(conn: Connection, root: str, with_cases: bool) -> None:
    try:
        bundle = load_bundle(Path(root))
        evaluator = RegoEvaluator(bundle)
        for domain in bundle.plans():  # every plan runs once, cases or not
            evaluator.evaluate(domain, [{"domain": domain, "action": "", "context": {}}])
        failed = [r for r in run_cases(bundle, evaluator) if not r.passed] if with_cases else []
    except Exception as exc:  # reported to the parent
        conn.send(("refused", f"{type(exc).__name__}: {exc}"))
        return
    if failed:
        names = "; ".join(f"{r.policy_id}: {r.name} ({r.detail})" for r in failed[:5])
        conn.send(("refused", f"{len(failed)} policy case(s) fail: {names}"))
        return
    conn.send(("ok", bundle.revision))
