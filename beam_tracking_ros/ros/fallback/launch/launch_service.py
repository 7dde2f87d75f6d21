"""``LaunchService``: visits the descriptions, runs the processes, and shuts everything down cleanly.

Why this shape: one main thread owns all launch state (context, handlers, timers); helper threads only
read pipes and wait for processes, handing results over a queue. Signals only append to a list that the
main loop polls, so no lock is ever taken inside a signal handler.

Shutdown follows the real launch: SIGINT to every process, SIGTERM after ``sigterm_timeout``, SIGKILL
after a further ``sigkill_timeout``. A second Ctrl-C escalates at once.

Processes stay in the launcher's process group, as with the real launch: a supervisor that stops the
launch with ``killpg(SIGKILL)`` (or ``kill -- -PGID``) must not leave orphaned nodes behind. So a terminal
Ctrl-C reaches every node by itself, and -- as upstream does -- a shutdown caused by SIGINT sends no
second SIGINT (a node would get it in the middle of its cleanup) unless ``noninteractive`` is set (no
terminal: the SIGINT may have been sent to the launcher alone); the SIGTERM/SIGKILL escalation still
ends a node that did not get or did not obey it.
"""

from __future__ import annotations

import contextlib
import datetime
import heapq
import itertools
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from .actions import ProcessSpec
from .core import LaunchContext, LaunchDescriptionEntity, LaunchError
from .event_handlers import EventHandler, ProcessExited, ProcessStarted, ShutdownEvent

__all__ = ["LaunchService"]

_SCREEN = {"screen", "both", "full"}
_POLL_S = 0.1


class _Process:
    """One started process and its shutdown state."""

    def __init__(self, action: Any, spec: ProcessSpec, name: str, popen: subprocess.Popen[bytes]) -> None:
        self.action, self.spec, self.name, self.popen = action, spec, name, popen
        self.done = False
        self.term_at: float | None = None
        self.kill_at: float | None = None

    def send(self, sig: int) -> None:
        """Signal the process itself (not a group: it shares ours), unless it is already reaped."""
        if self.popen.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                self.popen.send_signal(sig)


class LaunchService:
    """Runs included launch descriptions until every process has exited or a shutdown completes."""

    def __init__(
        self, *, argv: list[str] | None = None, noninteractive: bool = False, debug: bool = False
    ) -> None:
        self.context = LaunchContext(argv=argv, service=self)
        self.debug = debug
        self.noninteractive = noninteractive
        self._entities: list[LaunchDescriptionEntity] = []
        self._events: queue.Queue[_Process] = queue.Queue()
        self._signals: list[int] = []
        self._procs: list[_Process] = []
        self._handlers: list[tuple[EventHandler, Any]] = []
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._names: dict[str, int] = {}
        self._shutdown_reason: str | None = None
        self._failed = False
        self._out_lock = threading.Lock()
        self._log: IO[str] | None = None
        self._temp_files: list[str] = []

    # ---- API used by actions -------------------------------------------------------------------
    def include_launch_description(self, launch_description: LaunchDescriptionEntity) -> None:
        self._entities.append(launch_description)

    def log(self, level: str, source: str, message: str) -> None:
        self._write(f"[{level}] [{source}]: {message}\n", sys.stdout if level == "INFO" else sys.stderr, True)

    def register_event_handler(self, handler: EventHandler, snapshot: Any) -> None:
        self._handlers.append((handler, snapshot))

    def schedule(self, delay: float, entities: list[LaunchDescriptionEntity], snapshot: Any) -> None:
        self._add_timer(delay, lambda: self._visit_all(entities, snapshot))

    @property
    def shutting_down(self) -> bool:
        """Whether a shutdown (Ctrl-C, a signal, a Shutdown action or an error) is under way."""
        return self._shutdown_reason is not None

    def request_shutdown(self, reason: str, *, failed: bool = False) -> None:
        if failed:
            self._failed = True
        self._begin_shutdown(reason)

    def start_process(self, action: Any, spec: ProcessSpec) -> None:
        if self._shutdown_reason is not None:
            self.log("WARNING", "launch", f"not starting '{spec.name}': the launch is shutting down")
            return
        self._temp_files += spec.temp_files
        count = self._names[spec.name] = self._names.get(spec.name, 0) + 1
        name = f"{spec.name}-{count}"
        cmd: Any = " ".join(spec.cmd) if spec.shell else spec.cmd
        try:
            popen = subprocess.Popen(
                cmd,
                cwd=spec.cwd,
                env=spec.env,
                shell=spec.shell,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except OSError as exc:
            raise LaunchError(f"failed to start process '{name}' ({' '.join(spec.cmd)}): {exc}") from exc
        proc = _Process(action, spec, name, popen)
        self._procs.append(proc)
        self.log("INFO", name, f"process started with pid [{popen.pid}]")
        readers = [
            threading.Thread(target=self._pump, args=(proc, stream), daemon=True)
            for stream in ("stdout", "stderr")
        ]
        for t in readers:
            t.start()
        threading.Thread(target=self._wait, args=(proc, readers), daemon=True).start()
        self._dispatch(ProcessStarted(action=action, name=name, pid=popen.pid, cmd=list(spec.cmd)))

    # ---- running ---------------------------------------------------------------------------------
    def run(self, *, shutdown_when_idle: bool = True) -> int:
        """Visit everything, then serve events until done; returns the exit code (0 ok, 1 failure)."""
        old_handlers: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                old_handlers[sig] = signal.signal(sig, lambda signum, _frame: self._signals.append(signum))
        self._open_log()
        try:
            self._visit_all(self._entities, None)
            self._loop()
        finally:
            for p in self._procs:  # only reached with live processes if the loop itself failed
                if not p.done and p.popen.poll() is None:
                    p.send(signal.SIGKILL)
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
            for path in self._temp_files:
                with contextlib.suppress(OSError):
                    os.unlink(path)
            if self._log is not None:
                self._log.close()
        return 1 if self._failed else 0

    def _loop(self) -> None:
        while True:
            alive = [p for p in self._procs if not p.done]
            if not alive and (self._shutdown_reason is not None or not self._timers):
                return
            try:
                exited: _Process | None = self._events.get(timeout=_POLL_S)
            except queue.Empty:
                exited = None
            # Signals first: a group Ctrl-C reaches the nodes too, and a node ending on it must not
            # be taken for the cause of the shutdown (that would make our own SIGINT an "again").
            while self._signals:
                self._on_signal(self._signals.pop(0))
            if exited is not None:
                self._on_exit(exited)
            now = time.monotonic()
            while self._timers and self._timers[0][0] <= now:
                heapq.heappop(self._timers)[2]()
            self._escalate(now)

    def _visit_all(self, entities: list[LaunchDescriptionEntity], snapshot: Any, event: Any = None) -> None:
        """Depth-first visit; any error stops the launch with a clear message and a failing exit code."""
        try:
            if snapshot is not None:
                self.context._restore(snapshot)
            if event is not None:
                self.context.extend_locals({"event": event})
            stack = list(reversed(entities))
            while stack:
                subs = stack.pop().visit(self.context)
                if subs:
                    stack.extend(reversed(subs))
        except Exception as exc:
            # as upstream launch: one line, the traceback with --debug
            if self.debug and not isinstance(exc, LaunchError):
                self.log("DEBUG", "launch", "".join(traceback.format_exception(exc)).rstrip())
            self.log("ERROR", "launch", f"Caught exception in launch (see debug for traceback): {exc}")
            self._failed = True
            self._begin_shutdown(f"error: {exc}", quiet=True)

    def _dispatch(self, event: Any) -> None:
        """Run matching handlers, each in the scope it was registered in, then restore the caller's scope."""
        saved = self.context._snapshot()
        try:
            self._dispatch_in_scopes(event)
        finally:
            self.context._restore(saved)

    def _dispatch_in_scopes(self, event: Any) -> None:
        for handler, snapshot in list(self._handlers):
            if handler.matches(event):

                def react(h: EventHandler = handler, s: Any = snapshot) -> list[LaunchDescriptionEntity]:
                    self.context._restore(s)
                    self.context.extend_locals({"event": event})
                    return h.handle(event, self.context)

                try:
                    entities = react()
                except Exception as exc:
                    self.log("ERROR", "launch", f"event handler failed: {exc}")
                    self.request_shutdown(f"error: {exc}", failed=True)
                    continue
                self._visit_all(entities, None)

    def _on_exit(self, proc: _Process) -> None:
        proc.done = True
        rc, pid = proc.popen.returncode, proc.popen.pid
        if rc == 0:
            self.log("INFO", proc.name, f"process has finished cleanly [pid {pid}]")
        else:
            self.log(
                "ERROR",
                proc.name,
                f"process has died [pid {pid}, exit code {rc}, cmd '{' '.join(proc.spec.cmd)}'].",
            )
        self._dispatch(
            ProcessExited(action=proc.action, name=proc.name, pid=pid, cmd=list(proc.spec.cmd), returncode=rc)
        )
        if proc.spec.respawn and self._shutdown_reason is None:
            self._add_timer(proc.spec.respawn_delay, lambda: self._respawn(proc))

    def _respawn(self, proc: _Process) -> None:
        try:
            self.start_process(proc.action, proc.spec)
        except LaunchError as exc:
            self.log("ERROR", "launch", str(exc))

    def _on_signal(self, signum: int) -> None:
        if self._shutdown_reason is None:
            what = (
                "user interrupted with ctrl-c (SIGINT)"
                if signum == signal.SIGINT
                else f"received {signal.Signals(signum).name}"
            )
            self.log("WARNING", "launch", what)
            self._begin_shutdown(what, quiet=True)
            return
        self.log("WARNING", "launch", "signal received again: escalating")
        for p in self._procs:
            if not p.done:
                if p.kill_at is None:
                    p.term_at = 0.0
                else:
                    p.kill_at = 0.0
        self._escalate(time.monotonic())

    def _begin_shutdown(self, reason: str, quiet: bool = False) -> None:
        if self._shutdown_reason is not None:
            return
        self._shutdown_reason = reason
        if not quiet:
            self.log("INFO", "launch", f"shutting down: {reason}")
        self._timers.clear()
        due_to_sigint = "SIGINT" in reason
        self._dispatch(ShutdownEvent(reason=reason, due_to_sigint=due_to_sigint))
        send_sigint = not due_to_sigint or self.noninteractive  # upstream ExecuteLocal's rule
        now = time.monotonic()
        for p in self._procs:
            if not p.done:
                if send_sigint:
                    p.send(signal.SIGINT)
                p.term_at = now + p.spec.sigterm_timeout

    def _escalate(self, now: float) -> None:
        for p in self._procs:
            if p.done:
                continue
            if p.kill_at is not None and now >= p.kill_at:
                self.log("WARNING", "launch", f"process[{p.name}] still running: sending SIGKILL")
                p.send(signal.SIGKILL)
                p.kill_at = float("inf")
            elif p.kill_at is None and p.term_at is not None and now >= p.term_at:
                self.log(
                    "WARNING",
                    "launch",
                    f"process[{p.name}] failed to terminate after SIGINT, escalating to SIGTERM",
                )
                p.send(signal.SIGTERM)
                p.kill_at = now + p.spec.sigkill_timeout

    def _add_timer(self, delay: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (time.monotonic() + max(0.0, delay), next(self._seq), fn))

    # ---- helper threads --------------------------------------------------------------------------
    def _pump(self, proc: _Process, stream: str) -> None:
        pipe = proc.popen.stdout if stream == "stdout" else proc.popen.stderr
        assert pipe is not None
        screen = proc.spec.output in _SCREEN or (stream == "stderr" and proc.spec.output == "log")
        target = sys.stdout if stream == "stdout" else sys.stderr
        for raw in iter(pipe.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self._write(f"[{proc.name}] {line}\n", target, screen)
        pipe.close()

    def _wait(self, proc: _Process, readers: list[threading.Thread]) -> None:
        proc.popen.wait()
        for t in readers:  # print the last lines before the exit message
            t.join(timeout=2.0)
        self._events.put(proc)

    def _write(self, text: str, target: IO[str], screen: bool) -> None:
        with self._out_lock:
            if screen:
                try:
                    target.write(text)
                    target.flush()
                except (BrokenPipeError, ValueError):  # our stdout went away (e.g. `| head`): keep running
                    pass
            if self._log is not None:
                self._log.write(text)
                self._log.flush()

    def _open_log(self) -> None:
        """Like the real launch, keep a launch.log with every line (also those not shown on screen)."""
        base = os.environ.get("ROS_LOG_DIR") or os.path.join(
            os.environ.get("ROS_HOME", os.path.join(os.path.expanduser("~"), ".ros")), "log"
        )
        stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H-%M-%S-%f")
        folder = Path(base) / f"{stamp}-{socket.gethostname()}-{os.getpid()}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._log = open(folder / "launch.log", "a", encoding="utf-8")  # noqa: SIM115 - closed in run()
        except OSError:
            return
        self.log("INFO", "launch", f"All log files can be found below {folder}")
