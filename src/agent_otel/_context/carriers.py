"""Patches that carry the context across boundaries the program creates itself:
``ProcessPoolExecutor.submit``, ``multiprocessing`` children, ``subprocess.Popen``, outgoing
``http.client`` requests (W3C headers) and threads whose class overrides ``run()``. Each patch is
idempotent and undone by its uninstrument. The process patches apply when their module is imported: a
program that never starts a process pool or a ``multiprocessing`` child does not import them for us.
"""

from __future__ import annotations

import _socket
import functools
import importlib
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Mapping
from concurrent.futures.thread import _WorkItem
from types import MethodType, ModuleType
from typing import TYPE_CHECKING, Any, NoReturn, cast

import wrapt
from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from agent_otel._context.baggage_header import merged_baggage
from agent_otel._context.propagation import (
    CarriedCall,
    CarriedRun,
    _has_context_to_carry,
    carry,
    child_environment,
    process_carrier,
)
from agent_otel._engine.exit_signals import caught_outside_python, held_over_exit_flush
from agent_otel._engine.fork_signals import hold_over_fork
from agent_otel._engine.inside import INSIDE, Entry
from agent_otel._engine.self_telemetry import report_error
from agent_otel._engine.signal_view import (
    install_handler,
    installed_handler,
    stand_in_for_default,
)
from agent_otel._engine.threads import start_thread
from agent_otel._engine.tracebacks import leave_out_callers_frame
from agent_otel._engine.wrappers import Args, Kwargs, WrapperFunction

if TYPE_CHECKING:
    import http.client
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing.pool import Pool
    from multiprocessing.process import BaseProcess


def _wrap_pool_submit(wrapped: Callable[..., Any], instance: ProcessPoolExecutor, args: Args, kwargs: Kwargs) -> Any:
    """``submit(fn, /, *args, **kwargs)``: ``fn`` is positional only (a keyword ``fn`` is an argument of it)."""
    if args:
        args = (carry(args[0], always=True), *args[1:])
    try:
        return wrapped(*args, **kwargs)
    except BaseException as error:
        leave_out_callers_frame(error)
        raise


def _wrap_loky_submit(wrapped: Callable[..., Any], instance: object, args: Args, kwargs: Kwargs) -> Any:
    """loky's ``submit(fn, *args, **kwargs)``, whose ``fn`` may also come by keyword."""
    if not args and "fn" in kwargs:
        kwargs = {**kwargs, "fn": carry(kwargs["fn"], always=True)}
    return _wrap_pool_submit(wrapped, cast(Any, instance), args, kwargs)


def _wrap_pool_task(wrapped: Callable[..., Any], instance: Pool, args: Args, kwargs: Kwargs) -> Any:
    """``multiprocessing.Pool``'s (and billiard's) ``apply_async``, ``map``... (``func`` first, or by keyword): the task
    carries the context of this call, as a process pool's submit does (a ``ThreadPool``'s, the context itself)."""
    thread_pools = tuple(module.ThreadPool for name in ("multiprocessing.pool", "billiard.pool")
                         if (module := sys.modules.get(name)) is not None and hasattr(module, "ThreadPool"))
    bind = _in_this_context if isinstance(instance, thread_pools) else _carried
    if args:
        args = (bind(args[0]), *args[1:])
    elif "func" in kwargs:
        kwargs["func"] = bind(kwargs["func"])
    try:
        return wrapped(*args, **kwargs)
    except BaseException as error:  # (map, apply: the task's exception, raised again here)
        leave_out_callers_frame(error)
        raise


def _carried(func: Callable[..., Any]) -> Callable[..., Any]:
    return carry(func, always=True)


def _in_this_context(func: Callable[..., Any]) -> Callable[..., Any]:
    """For a thread of this process (a ``ThreadPool``'s worker, started before the call): the context itself,
    the job's roll-ups included, not its serialized ids; and the calls of ours it runs inside (see
    _wrap_thread_init)."""
    return functools.partial(_run_in, otel_context.get_current(), INSIDE.get(), func)


def _run_in(context: otel_context.Context | None, inside: Entry | None, func: Callable[..., Any], /, *args: Any,
            **kwargs: Any) -> Any:
    """``func`` run in ``context`` (None: the current one) and inside the calls of ours ``inside`` notes, if any; a
    keyword argument of the program's named as one of these is ``func``'s (Prefect submits its tasks' with
    ``context=``)."""
    token = otel_context.attach(context) if context is not None else None
    noted = INSIDE.set(inside) if inside is not None else None
    try:
        return func(*args, **kwargs)
    except BaseException as error:
        leave_out_callers_frame(error)
        raise
    finally:
        if noted is not None:
            INSIDE.reset(noted)
        if token is not None:
            otel_context.detach(token)


#: Worker processes of pools serve many submits, each of which carries its own context; a manager's server
#: process serves every caller of its proxies, whose calls carry none. They start with no context, forked ones
#: included (a fork keeps the context it was made in), rather than for ever in the job that started them.
_POOL_WORKER_MODULES = ("concurrent.futures.process", "multiprocessing.pool", "multiprocessing.managers",
                        "billiard.pool")


def _wrap_process_start(wrapped: Callable[..., None], instance: BaseProcess, args: Args, kwargs: Kwargs) -> None:
    target = getattr(instance, "_target", None)
    if target is not None and not isinstance(target, CarriedCall):
        serving = getattr(target, "__module__", None) in _POOL_WORKER_MODULES
        # _target: private in multiprocessing, not in typeshed
        instance._target = CarriedCall(target, {}) if serving else carry(target)  # type: ignore[attr-defined]
    elif target is None and "run" not in vars(instance) and _runs_as_a_method(instance) and _has_context_to_carry():
        # A class that overrides run(): its run carried, as a target is, while start() hands the process to the
        # child (forked, or pickled for spawn and forkserver, where the carrier needs no agent-otel set up to
        # attach the context); then gone again, for the program's view of its object
        vars(instance)["run"] = CarriedRun(instance.run, process_carrier())
        try:
            return wrapped(*args, **kwargs)
        except BaseException as error:  # (a target spawn cannot pickle)
            leave_out_callers_frame(error)
            raise
        finally:
            vars(instance).pop("run", None)
    try:
        return wrapped(*args, **kwargs)
    except BaseException as error:
        leave_out_callers_frame(error)
        raise


def _runs_as_a_method(instance: BaseProcess) -> bool:
    """Whether the object's ``run`` is a method its class defines under that name: one that pickles (for spawn and
    forkserver) as ``getattr(obj, "run")``. Another (``run = some_function`` in the class body, pickled under that
    function's name, which the object lacks; a static method of a lambda, which cannot be pickled) is left as it is:
    carried, the child of a program that works without agent-otel failed."""
    run = getattr(instance, "run", None)
    return isinstance(run, MethodType) and run.__self__ is instance and run.__func__.__name__ == "run"


def _wrap_process_bootstrap(wrapped: Callable[..., int], instance: BaseProcess, args: Args, kwargs: Kwargs) -> int:
    """The child's side of ``start()`` (a ``Process``, a ``Pool`` or ``ProcessPoolExecutor`` worker). SIGTERM
    (``Pool.terminate()``, the end of a ``with Pool(...)`` block) ends its calls and flushes, whatever the start
    method. A child started by fork or forkserver leaves through ``os._exit()`` when ``_bootstrap`` returns (no
    atexit hook runs): it flushes first, if it exports by then (its initializer may have set agent-otel up); a
    spawned one leaves through ``sys.exit()``, whose atexit hook flushes, once."""
    if _own_telemetry():
        _flush_on_terminate()
    else:
        _die_of_terminate_as_plain()
    try:
        return wrapped(*args, **kwargs)
    finally:
        if _start_method(instance) != "spawn":  # os._exit() next: nothing of the program runs after this flush
            _flush_if_own()


def _wrap_worker_exit(wrapped: Callable[..., NoReturn], instance: object, args: Args, kwargs: Kwargs) -> NoReturn:
    """billiard's pool worker on its way out (``Worker._do_exit``: its work loop returned, or raised the SystemExit
    into which billiard's own handler, set in each worker after the fork in place of ours, turns SIGTERM, SIGQUIT and
    SIGHUP): what it recorded is exported first, within the exit flush budget. Next it reports its death and sleeps a
    second before ``os._exit()``, and the pool's next SIGTERM (the default action by then) killed it there, with all
    it had recorded since its last export (Celery's ``terminate()``, cold shutdown, ``kill -TERM`` of a worker). A
    signal during the flush acts as it would have in ``_do_exit``: the default action ends the worker; billiard's
    handler raises SystemExit, and billiard's exit goes on all the same (its death reported, ``os._exit()``), as its
    own ``finally`` would have gone on. Each exporter tries once: the worker leaves next."""
    try:
        if _own_telemetry():
            _flush_queued("autoinstrument.process_exit", retry=False)
    finally:
        wrapped(*args, **kwargs)


def _start_method(process: BaseProcess) -> str | None:
    """How ``process`` was started: its class says (a context's ``Process``), else the default context, which a
    spawned or forkserver child is given by its parent. (Whether this process imported agent-otel itself does not
    tell: a forkserver child imports the program's main module, as a spawned one does, and leaves by
    ``os._exit()``.)"""
    import multiprocessing  # imported: this runs in its child

    try:
        return getattr(process, "_start_method", None) or multiprocessing.get_start_method(allow_none=True)
    except Exception as exc:
        report_error("autoinstrument.process_exit", exc)
        return None


def _own_telemetry() -> bool:
    from agent_otel._sdk.configure import exports_from_this_process  # imported already: configure() patched us

    try:
        return exports_from_this_process()
    except Exception as exc:
        report_error("autoinstrument.process_exit", exc)
        return False


def _exit_flush(signum: int | None = None, leaving: bool = True) -> None:
    """The flush of a worker on its way out: killed by ``signum`` next, or leaving by ``os._exit()`` (``leaving``:
    nothing of the program runs after it, see ``exit_signals``)."""
    from agent_otel._sdk.configure import end_in_flight_on, flush_at_exit  # imported already: configure() patched us

    if signum is not None:
        end_in_flight_on(signum)
    flush_at_exit(leaving)


def _on_terminate(signum: int, frame: object) -> None:
    """SIGTERM in a forked worker (``Pool.terminate()`` and leaving a ``with Pool(...)`` block send it to
    the workers still running): end its jobs, agents... still running, flush, then die of it as with no
    handler. Called by a handler the program installed since (chaining to the one it replaced): nothing, as
    SIG_DFL is not callable."""
    if installed_handler(signum) is not _on_terminate:
        return
    if os.getpid() != _handler_pid:  # a child forked from the worker, before its fork handler put the default back
        install_handler(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    # Ignored while it flushes: the watcher stops interrupting, and neither its interruptions nor a second SIGTERM
    # run this again inside the flush (the inner one then killed the process before the outer one had exported)
    install_handler(signum, signal.SIG_IGN)
    try:
        _exit_flush(signum)
    finally:
        install_handler(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _die_of_terminate_as_plain() -> None:
    """A worker that exports nothing of its own (``agent-otel run`` serving /metrics from the program's process alone,
    its default) has nothing to flush on the SIGTERM of ``Pool.terminate()``: the launcher's handler it inherited
    goes, and it dies of it as without agent-otel. Kept without the watcher (see :func:`_watch_for_terminate`), a
    SIGTERM that found its main thread going to sleep on its task queue never ran, and the worker and
    ``with Pool(...)`` hung for ever. SIGHUP keeps it: a worker whose initializer sets its own export up later
    (:func:`flush_this_worker_on_exit` puts a SIGTERM handler back, not a SIGHUP one) flushes on a closed terminal."""
    try:
        if getattr(installed_handler(signal.SIGTERM), "flushes_agent_otel", False):
            install_handler(signal.SIGTERM, signal.SIG_DFL)
    except Exception as exc:  # not the main thread: never into the worker's start
        report_error("autoinstrument.process_exit", exc)


def _flush_on_terminate() -> None:
    """Install :func:`_on_terminate` in a forked child whose SIGTERM does the default, or ``agent-otel run``'s
    (inherited from the parent: it flushes as this one does, without the watcher), and :func:`_watch_for_terminate`.
    A handler of the program's, inherited from the parent, stays."""
    global _handler_pid, _replaced_handler
    try:
        current = installed_handler(signal.SIGTERM)
        if (current is signal.SIG_DFL and not caught_outside_python(signal.SIGTERM)) or getattr(
                current, "flushes_agent_otel", False):
            _handler_pid, _replaced_handler = os.getpid(), current  # first: a SIGTERM may come at once
            stand_in_for_default(signal.SIGTERM, _on_terminate, put_back=False)
            hold_over_fork(signal.SIGTERM, _on_terminate, in_child=_forget_the_watch_in_child)
            _watch_for_terminate()
    except Exception as exc:  # not the main thread; no signals or threads here: never into the worker's start
        report_error("autoinstrument.process_exit", exc)


#: How often the watcher interrupts the main thread until :func:`_on_terminate` runs there.
_TERMINATE_POKE_S = 0.05


def _watch_for_terminate() -> None:
    """Python runs a signal's handler in the main thread, when that thread next runs Python code. A SIGTERM that
    arrives just as the main thread goes to sleep in a C call (a pool worker taking its next task, from a queue
    whose lock ``Pool.terminate()`` holds) sets the handler to run and does not wake the thread: without
    agent-otel the worker dies of it; with a handler it slept for ever, and so did the parent's ``terminate()``
    (1 run in 22 to 277 under CPU load). The signal also goes to a wakeup fd, read by a thread of ours that then
    interrupts the main thread until the handler has run (it ends the process). Left out when the program has a
    wakeup fd of its own.

    The wakeup fd is a datagram socket whose reader is told each writer's pid: a process forked from the worker
    shares it until its fork handler unsets it (and a ``subprocess`` child, until it execs), and the worker died of
    a SIGTERM it sent its own child."""
    global _our_wakeup_fd, _ours_set, _watch_read_fd
    read_end, write_end = _wakeup_channel()
    previous = _set_wakeup_fd(write_end, warn_on_full_buffer=False)
    if previous != -1:  # the program's: put back
        _set_wakeup_fd(previous)
        os.close(read_end)
        os.close(write_end)
        return
    _our_wakeup_fd, _ours_set, _watch_read_fd = write_end, True, read_end
    signal.set_wakeup_fd = _programs_set_wakeup_fd
    main = threading.get_ident()  # called in the main thread (signal.signal() above requires it)
    terminate = int(signal.SIGTERM)
    worker = os.getpid()

    def watch() -> None:
        # both ends stay open for the process's life: a signal written to a socket nobody reads fails, loudly
        while not _terminate_from(read_end, terminate, worker):
            pass
        while installed_handler(signal.SIGTERM) is _on_terminate:
            signal.pthread_kill(main, signal.SIGTERM)
            time.sleep(_TERMINATE_POKE_S)

    start_thread(watch, "agent-otel-terminate-watch")


#: ``struct ucred``: pid, uid, gid.
_UCRED = struct.Struct("3i")
#: Whether a socket's reader can be told each writer's pid (Linux); elsewhere the watcher reads a pipe.
_SENDERS_KNOWN = hasattr(_socket, "SO_PASSCRED") and hasattr(_socket, "SCM_CREDENTIALS")


def _wakeup_channel() -> tuple[int, int]:
    """The watcher's read end and the wakeup fd (non-blocking, as ``set_wakeup_fd()`` requires), as plain fds: no
    socket object to warn when it is collected (a forked child frees the watcher thread's)."""
    if not _SENDERS_KNOWN:
        read_end, write_end = os.pipe()
    else:
        reader, writer = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_DGRAM)
        reader.setsockopt(_socket.SOL_SOCKET, _socket.SO_PASSCRED, 1)
        read_end, write_end = reader.detach(), writer.detach()
    os.set_blocking(write_end, False)
    return read_end, write_end


def _terminate_from(read_end: int, terminate: int, pid: int) -> bool:
    """Whether the next datagram on the wakeup socket says SIGTERM and was written by process ``pid`` (by any
    process, where senders are not known). The interpreter's own socket type: the program may replace
    ``socket.socket`` (pytest-socket's ``disable_socket()``), which then killed the watcher."""
    if not _SENDERS_KNOWN:
        return terminate in os.read(read_end, 64)
    reader = _socket.socket(fileno=read_end)
    try:
        data, ancillary, _, _ = reader.recvmsg(64, _socket.CMSG_SPACE(_UCRED.size))
    finally:
        reader.detach()
    senders = {_UCRED.unpack_from(value)[0] for level, kind, value in ancillary
               if level == _socket.SOL_SOCKET and kind == _socket.SCM_CREDENTIALS}
    return terminate in data and pid in senders


#: The interpreter's own ``signal.set_wakeup_fd``; the write end of the watcher's socket, and whether it is the one
#: set; its read end.
_set_wakeup_fd = signal.set_wakeup_fd
_our_wakeup_fd = -1
_ours_set = False
_watch_read_fd = -1
#: The process that installed :func:`_on_terminate` (-1: none did), and the handler it replaced.
_handler_pid = -1
_replaced_handler: Callable[[int, Any], object] | int | None = signal.SIG_DFL


@functools.wraps(_set_wakeup_fd)
def _programs_set_wakeup_fd(fd: int, /, *, warn_on_full_buffer: bool = True) -> int:
    """``signal.set_wakeup_fd`` in a worker whose watcher's fd is set: the program that sets its own (trio's event
    loop) finds none before it, as without agent-otel (it found ours and warned that another library's signal
    handling might collide with its own), and takes the signals over; when it puts "none" back, as it found it,
    the watcher's is set again (the watcher waited for nothing for the rest of the worker's life)."""
    global _ours_set
    if fd == -1:  # "none", as the program found it or puts it back: the watcher's, which it does not see
        previous = _set_wakeup_fd(_our_wakeup_fd, warn_on_full_buffer=False)
        seen, _ours_set = (-1 if _ours_set else previous), True
        return seen
    previous = _set_wakeup_fd(fd, warn_on_full_buffer=warn_on_full_buffer)
    seen, _ours_set = (-1 if _ours_set else previous), False
    return seen


_programs_set_wakeup_fd.__module__ = "signal"  # pickled by name, as signal.set_wakeup_fd, while it is that


def _forget_the_watch_in_child() -> None:
    """After ``os.fork()`` in a watched worker: the child has no watcher (threads do not survive a fork), so it is
    left as it would be without the watch: SIGTERM handled as before it (the default), no wakeup fd (the worker's
    socket, which the child's signals woke), the interpreter's ``signal.set_wakeup_fd``, and none of the watcher's
    fds. A multiprocessing child is watched again by its own start (:func:`_wrap_process_bootstrap`). SIGTERM is
    held until this has run (:mod:`agent_otel._engine.fork_signals`)."""
    global _our_wakeup_fd, _ours_set, _watch_read_fd, _handler_pid
    try:
        if _handler_pid in (-1, os.getpid()):
            return
        fds, ours_set = [fd for fd in (_watch_read_fd, _our_wakeup_fd) if fd != -1], _ours_set
        _our_wakeup_fd, _ours_set, _watch_read_fd, _handler_pid = -1, False, -1, -1
        if installed_handler(signal.SIGTERM) is _on_terminate:
            install_handler(signal.SIGTERM, _replaced_handler)
        if ours_set:
            _set_wakeup_fd(-1)
        if signal.set_wakeup_fd is _programs_set_wakeup_fd:
            signal.set_wakeup_fd = _set_wakeup_fd
        for fd in fds:
            os.close(fd)
    except (ValueError, OSError) as exc:  # forked off the main thread: signals are the main thread's to set
        report_error("autoinstrument.process_exit", exc)


def _flush_before_os_exit(leaving: bool = True) -> None:
    """Never raises when ``leaving``: what ``_bootstrap`` returned is the worker's exit status, and ``os._exit()``
    comes next. Otherwise (the program's threads still to be joined first) a signal held meanwhile reaches the
    program's handler after the flush, and what that raises is the program's."""
    if not leaving:
        _exit_flush(leaving=False)
        return
    try:
        _exit_flush()
    except BaseException as exc:  # e.g. a signal handler's: what _bootstrap returned stays the status
        if isinstance(exc, Exception):
            report_error("autoinstrument.process_exit", exc)


def flush_this_worker_on_exit() -> None:
    """configure() in a ``multiprocessing`` worker whose ``_bootstrap`` is running already: the program set agent-otel
    up in its pool's initializer or its process's target (its parent did not, so that ``_bootstrap`` is not the
    wrapped one, see :func:`_wrap_process_bootstrap`). The same exits flush: SIGTERM, and the end of the work of a
    worker that leaves by ``os._exit()`` (fork, forkserver), among multiprocessing's own exit finalizers, last."""
    multiprocessing = sys.modules.get("multiprocessing")  # a worker has it imported; anything else is not one
    if multiprocessing is None or multiprocessing.parent_process() is None:
        return
    from multiprocessing import util

    _flush_on_terminate()
    if _start_method(multiprocessing.current_process()) != "spawn":  # a spawned worker's atexit hook flushes
        util.Finalize(None, _flush_at_the_last_finalizer, exitpriority=_LAST)


#: Below every priority multiprocessing and programs give their exit finalizers (0 and up), so it runs after them.
_LAST = -1_000_000


def _flush_if_own(leaving: bool = True) -> None:
    if _own_telemetry():  # not shut down by the worker's code meanwhile
        _flush_before_os_exit(leaving)


def _flush_at_the_last_finalizer() -> None:
    """After the program's exit finalizers, ``_bootstrap`` joins the program's threads that are not daemons, then
    the worker leaves by ``os._exit()``: while one of them still runs, the program is not done."""
    current = threading.current_thread()
    _flush_if_own(leaving=not any(thread is not current and not thread.daemon and thread.is_alive()
                                  for thread in threading.enumerate()))


#: The variables a development server's reloader sets for the child that runs the program (werkzeug's, behind Flask's
#: debug mode; Django's ``runserver``): the process that sets one only watches the files and restarts that child.
_RELOADER_CHILD_MARKS = ("WERKZEUG_RUN_MAIN", "RUN_MAIN")
#: What runs in this process before it starts a reloader's child (configure() hands its /metrics port over to it).
before_reloader_child: list[Callable[[], None]] = []


def _starts_a_reloader_child(command: object, env: object) -> bool:
    """Whether ``command`` given ``env`` is a reloader's child that this process starts: this program again, with this
    interpreter and its arguments (werkzeug's and Django's reloaders start it so), and the mark set for it, not
    inherited (a child of the program's own process has it already, and may start children of its own)."""
    if not (isinstance(env, Mapping) and any(
            env.get(name) == "true" and os.environ.get(name) != "true" for name in _RELOADER_CHILD_MARKS)):
        return False
    argv = [os.fsdecode(part) for part in command] if isinstance(command, list | tuple) else []
    arguments = sys.argv[1:]
    return bool(argv) and argv[0] == sys.executable and (not arguments or argv[-len(arguments):] == arguments)


def _wrap_popen_init(wrapped: Callable[..., None], instance: subprocess.Popen[Any], args: Args,
                     kwargs: Kwargs) -> None:
    if before_reloader_child and _starts_a_reloader_child(args[0] if args else kwargs.get("args"),
                                                          args[10] if len(args) > 10 else kwargs.get("env")):
        for step in before_reloader_child:
            try:
                step()
            except Exception as exc:
                report_error("autoinstrument.reloader", exc)
    if _has_context_to_carry():
        # Popen(args, bufsize, executable, stdin, stdout, stderr, preexec_fn, close_fds, shell, cwd, env)
        if len(args) > 10:
            args = (*args[:10], child_environment(args[10]), *args[11:])
        else:
            kwargs["env"] = child_environment(kwargs.get("env"))
    try:
        return wrapped(*args, **kwargs)
    except BaseException as error:  # (a program not found)
        leave_out_callers_frame(error)
        raise


#: Set while ``os.execvp``/``os.execvpe`` try the directories of ``PATH`` in turn, each through ``os.execv`` or
#: ``os.execve``: the flush before the exec is theirs, once.
_searching_path = threading.local()


def _flush_before_exec() -> None:
    """What this process queued is exported before an exec replaces it, as no exit flush will run: once, each exporter
    trying once, as at exit (a Collector that is down cost the whole budget in retries, on every exec)."""
    if not getattr(_searching_path, "active", False):
        _flush_queued("autoinstrument.exec", retry=False)


def _wrap_exec_searching_path(wrapped: Callable[..., Any], instance: object, args: Args, kwargs: Kwargs) -> Any:
    """``os.execvp``/``os.execvpe`` (``os.execlp``/``execlpe`` call them): one flush before the search, not one per
    directory of ``PATH`` it tries (``os.execv`` or ``os.execve`` each: a command in the fourth directory flushed four
    times)."""
    _flush_before_exec()
    _searching_path.active = True
    try:
        return wrapped(*args, **kwargs)
    except BaseException as error:  # (a program not found: the process goes on)
        leave_out_callers_frame(error)
        raise
    finally:
        _searching_path.active = False


def _wrap_execv(wrapped: Callable[..., Any], instance: object, args: Args, kwargs: Kwargs) -> Any:
    """``os.execv(path, argv)`` (and ``os.execl``, ``execvp``..., which call it, as ``os.spawnv*`` does in its child):
    the program that replaces this one continues the job and trace, as a subprocess does (through ``os.execve``,
    with the environment); and what this process queued is flushed first (:func:`_flush_before_exec`). A call
    ``os.execv`` refuses (keywords, a third argument, a descriptor for a path, an empty argv) goes to it."""
    _flush_before_exec()
    try:
        if not kwargs and len(args) == 2:  # (python checks the arguments' number, then their types)
            args, kwargs = _bytearray_path_said("execv: path should be string, bytes or os.PathLike", args, kwargs)
        takes = not kwargs and len(args) == 2 and _path_taken(args[0]) and _argv_taken(args[1])
        if not (takes and _has_context_to_carry()):
            return wrapped(*args, **kwargs)  # nothing to carry, or arguments python will refuse: as it refuses them
        try:
            return _execve(args[0], args[1], cast("Mapping[str, str]", child_environment(None) or os.environ))
        except OSError as error:
            refused = OSError(error.errno, error.strerror)  # os.execv's error: without the file name execve's names
        raise refused  # (after the handler: no context of ours on it)
    except BaseException as error:  # (a program not found)
        leave_out_callers_frame(error)
        raise


def _wrap_execve(wrapped: Callable[..., Any], instance: object, args: Args, kwargs: Kwargs) -> Any:
    """``os.execve(path, argv, env)`` (``os.execle``, ``execvpe``...): as :func:`_wrap_execv`, with the job and trace
    in the environment given. A call ``os.execve`` refuses (an env that is no mapping) goes to it."""
    _flush_before_exec()
    try:
        given = dict(zip(("path", "argv", "env"), args, strict=False), **kwargs)
        complete = len(given) == len(args) + len(kwargs) == 3 and set(given) == {"path", "argv", "env"}
        if complete:  # (python checks the arguments' number and names, then their types)
            args, kwargs = _bytearray_path_said("execve: path should be string, bytes, os.PathLike or integer", args,
                                                kwargs)
            given = dict(zip(("path", "argv", "env"), args, strict=False), **kwargs)
        takes = complete and isinstance(given["env"], Mapping) and _argv_taken(given["argv"])
        if not (takes and _has_context_to_carry()):
            return wrapped(*args, **kwargs)
        return _execve(given["path"], given["argv"], cast("Mapping[str, str]", child_environment(given["env"])))
    except BaseException as error:  # (a program not found)
        leave_out_callers_frame(error)
        raise


#: Python 3.11 takes a ``bytearray`` path (with a warning); 3.12 refuses it with ``TypeError``, as for any other type
_BYTEARRAY_PATH_TAKEN = sys.version_info < (3, 12)


def _bytearray_path_said(refusal: str, args: Args, kwargs: Kwargs) -> tuple[Args, Kwargs]:
    """A ``bytearray`` path, which python 3.11 takes with a ``DeprecationWarning`` for the line that called it: warned
    of here for that line (python's, from under the wrapper, named the wrapper's, which the default filters hide),
    and passed on as bytes (no second warning). From 3.12 it is left as it is, for python to refuse."""
    if not _BYTEARRAY_PATH_TAKEN:
        return args, kwargs
    in_args = bool(args) and type(args[0]) is bytearray
    if not (in_args or type(kwargs.get("path")) is bytearray):
        return args, kwargs
    try:
        warnings.warn(f"{refusal}, not bytearray", DeprecationWarning, stacklevel=3)
    except BaseException as error:  # the program's filters make it an error: raised from its line, as python's
        leave_out_callers_frame(error)
        raise
    if in_args:
        return (bytes(args[0]), *args[1:]), kwargs
    return args, {**kwargs, "path": bytes(kwargs["path"])}


def _path_taken(path: object) -> bool:
    """Whether ``os.execv`` takes ``path``: a file's path (not a descriptor), with no NUL in it (its message names
    the function that refuses it, which would be ``execve``)."""
    return isinstance(path, str | bytes | os.PathLike) and _encoded(path) is not None


def _argv_taken(argv: object) -> bool:
    """Whether ``os.execv`` and ``os.execve`` take ``argv``: a list or tuple whose first item is not empty once
    encoded, with no NUL (the others are theirs to refuse)."""
    return isinstance(argv, list | tuple) and bool(argv) and bool(_encoded(argv[0]))


def _encoded(value: object) -> bytes | None:
    """``value`` as python passes it to the system (a path or an argument): None where it has a NUL or is no path."""
    try:
        encoded = os.fsencode(value)  # type: ignore[arg-type]
    except Exception:  # none python takes either (a PathLike whose __fspath__ raises: python raises it, as plain)
        return None
    return None if b"\0" in encoded else encoded


def _wrap_os_exit(wrapped: Callable[..., NoReturn], instance: object, args: Args, kwargs: Kwargs) -> NoReturn:
    """``os._exit()`` runs no exit hook: what this process queued (spans that ended, the metrics since the last
    export) is flushed first, within the exit flush budget, as before an exec. A forked child that leaves by it (each
    test ``pytest --forked`` runs) lost all it recorded. Nothing stops the exit: not even a Ctrl-C meanwhile, nor a
    SIGTERM or SIGHUP, which without the flush would have found the process gone (see ``exit_signals``): it leaves
    with the status it gives."""
    try:
        with held_over_exit_flush():  # what it held is dropped
            _flush_queued("autoinstrument.os_exit", retry=False)
    except BaseException:  # a KeyboardInterrupt in the flush: the program asked to leave at once
        pass
    wrapped(*args, **kwargs)


def _wrap_loop_subprocess(wrapped: Callable[..., Any], instance: object, args: Args, kwargs: Kwargs) -> Any:
    """uvloop's ``subprocess_exec`` and ``subprocess_shell`` (what ``asyncio.create_subprocess_exec`` and ``_shell``
    call on its loop): libuv starts the child, not ``subprocess.Popen``, and it continued no job or trace."""
    if _has_context_to_carry():
        kwargs["env"] = child_environment(kwargs.get("env"))
    return wrapped(*args, **kwargs)


def _wrap_posix_spawn(wrapped: Callable[..., int], instance: object, args: Args, kwargs: Kwargs) -> int:
    """``os.posix_spawn(path, argv, env, ...)`` and ``posix_spawnp``: the child continues the job and trace."""
    if _has_context_to_carry() and len(args) >= 3:
        args = (args[0], args[1], child_environment(args[2]), *args[3:])
    try:
        return wrapped(*args, **kwargs)
    except BaseException as error:
        leave_out_callers_frame(error)
        raise


#: The interpreter's own execve, which the carriers call with the environment (``os.execve`` is one while patched).
_execve = os.execve


def _flush_queued(stage: str, retry: bool = True) -> bool:
    """Whether it was done within its budget (``retry=False``: the process leaves next, see ``flush_queued``)."""
    from agent_otel._sdk.configure import flush_queued  # imported already: configure() patched us

    try:
        return flush_queued(retry)
    except Exception as exc:
        report_error(stage, exc)
        return False


def flush_on_the_programs_terminate() -> None:
    """configure() on the main thread of a process whose SIGTERM handler is the program's own: uvicorn installs
    its handler before it imports the app that calls configure(), and after a graceful shutdown puts the default
    back and raises SIGTERM again, which ends the process with no atexit hook, and no exit flush: everything since
    the last export was lost, in every worker. A handler of ours now exports what has ended so far, within the
    exit flush budget (as an exit flush would delay the exit), then runs the program's, which decides as before;
    one the program installs later replaces ours. Calls still running then are the program's to finish: only what
    ends after it and before such an exit is lost."""
    if threading.current_thread() is not threading.main_thread():  # handlers are set there only: nothing to do
        return
    try:
        current = installed_handler(signal.SIGTERM)
        if callable(current) and not (getattr(current, "flushes_agent_otel", False) or current is _on_terminate
                                      or hasattr(current, "agent_otel_flushes_first")):  # ours already
            install_handler(signal.SIGTERM, _flushing_then(current))
    except (ValueError, OSError, RuntimeError) as exc:  # no signals here
        report_error("autoinstrument.process_exit", exc)


#: The signals whose default action ends the process with no exit hook, which a program may raise itself to die of.
_ENDING_SIGNALS = frozenset({signal.SIGTERM, signal.SIGHUP})
#: The interpreter's own ``signal.raise_signal``.
_raise_signal = signal.raise_signal
#: When the flush a program's SIGTERM handler ran first (:func:`_flushing_then`) ran out of its budget
#: (``time.monotonic()``), None if it did not: the endpoint was not answering then.
_terminate_flush_timed_out_at: float | None = None


@functools.wraps(_raise_signal)
def _flushing_raise_signal(signalnum: int, /) -> None:
    """``signal.raise_signal(SIGTERM)`` with SIGTERM's default action: the process ends there, with no atexit hook
    and no exit flush. uvicorn does it after a graceful shutdown (it puts back the handler it found and raises the
    signal it caught): a single uvicorn process and each gunicorn ``UvicornWorker`` (which sets the default after the
    fork, before the app sets agent-otel up, under ``agent-otel run`` too) lost what it had not exported yet. Its
    calls still running end and what is queued is exported first, within the exit flush budget, nothing shut down;
    then the signal does what it does (blocked, or in a container's PID 1, which it does not end: nothing here)."""
    try:
        handler = installed_handler(signalnum)
        if (signalnum in _ENDING_SIGNALS and threading.current_thread() is not threading.main_thread()
                and (handler is _on_terminate or getattr(handler, "flushes_agent_otel", False))):
            # Ours, where the program has the default (agent-otel run's, a worker's): Python runs it on the main
            # thread, which a signal raised in this thread does not wake from a blocking wait (the process hung
            # for ever, where the default ends it at once). Sent to the main thread, it interrupts the wait.
            signal.pthread_kill(threading.main_thread().ident or 0, signalnum)
            return
        if (signalnum in _ENDING_SIGNALS and handler is signal.SIG_DFL and os.getpid() != 1
                and not terminate_flush_timed_out() and signalnum not in signal.pthread_sigmask(signal.SIG_BLOCK, ())
                and _own_telemetry()):
            from agent_otel._sdk.configure import end_in_flight_on  # imported already: configure() patched us

            end_in_flight_on(signalnum)
            _flush_queued("autoinstrument.process_exit")
    except Exception as exc:
        report_error("autoinstrument.process_exit", exc)
    except BaseException:  # a KeyboardInterrupt during the flush: the signal is still raised, as the program asked
        _raise_signal(signalnum)
        raise
    _raise_signal(signalnum)


_flushing_raise_signal.flushes_agent_otel = True  # type: ignore[attr-defined]
_flushing_raise_signal.__module__ = "signal"  # pickled by name, as signal.raise_signal, while it is that


def flush_before_raised_signals() -> None:
    """Put :func:`_flushing_raise_signal` in ``signal.raise_signal``: a plain function named as the original, which
    pickles as it does (by name); undone by :func:`uninstrument_process_carriers`."""
    signal.raise_signal = _flushing_raise_signal


#: How long after a SIGTERM's flush ran out of its budget the endpoint is taken to be still down (s): the flushes
#: of the exit that follows it at once (the program's handler exits, or raises the signal) are not tried at length.
_STILL_DOWN_S = 1.0


def terminate_flush_timed_out() -> bool:
    """Whether a SIGTERM's flush ran out of its budget just now (the endpoint did not answer): the flush of the exit
    that follows is not tried again at length. A program that drains for longer first gets the whole budget."""
    at = _terminate_flush_timed_out_at
    return at is not None and time.monotonic() - at < _STILL_DOWN_S


def _flushing_then(handler: Callable[[int, Any], Any]) -> Callable[[int, Any], Any]:
    def on_terminate(signum: int, frame: Any) -> Any:
        global _terminate_flush_timed_out_at
        if not _flushing.locked():  # one at a time: a second SIGTERM during it goes to the program's at once
            with _flushing:
                done = _flush_queued("autoinstrument.process_exit")
                _terminate_flush_timed_out_at = None if done else time.monotonic()
        return handler(signum, frame)

    # (not ``flushes_agent_otel``: a worker forked with it keeps it, the program's handler with it)
    on_terminate.agent_otel_flushes_first = handler  # type: ignore[attr-defined]
    return on_terminate


_flushing = threading.Lock()


#: ``multiprocessing.Pool``'s methods that take a task's function (``apply`` and ``starmap`` go through them).
_POOL_TASK_METHODS = ("apply_async", "map", "map_async", "imap", "imap_unordered", "starmap", "starmap_async")

#: Per module: the class, its methods and the wrapper carrying the context through each.
_PROCESS_PATCHES: dict[str, tuple[tuple[str, str, WrapperFunction], ...]] = {
    "concurrent.futures.process": (("ProcessPoolExecutor", "submit", _wrap_pool_submit),),
    # loky's executor (joblib's ``Parallel`` runs on its reusable one, whose submit() calls this one): its workers
    # outlive a job, and started in the first job that used them (its context in their environment)
    "joblib.externals.loky.process_executor": (("ProcessPoolExecutor", "submit", _wrap_loky_submit),),
    "loky.process_executor": (("ProcessPoolExecutor", "submit", _wrap_loky_submit),),
    "multiprocessing.pool": tuple(("Pool", method, _wrap_pool_task) for method in _POOL_TASK_METHODS),
    "multiprocessing.process": (("BaseProcess", "start", _wrap_process_start),
                                ("BaseProcess", "_bootstrap", _wrap_process_bootstrap)),
    # billiard, multiprocessing's fork that Celery's prefork pool runs on: its processes as multiprocessing's
    "billiard.process": (("BaseProcess", "start", _wrap_process_start),
                         ("BaseProcess", "_bootstrap", _wrap_process_bootstrap)),
    "billiard.pool": (*(("Pool", method, _wrap_pool_task) for method in _POOL_TASK_METHODS),
                      ("Worker", "_do_exit", _wrap_worker_exit)),
    "subprocess": (("Popen", "__init__", _wrap_popen_init),),
    # its methods are its compiled base class's: wrapped on the class uvloop makes its loops of (see _patch)
    "uvloop": (("Loop", "subprocess_exec", _wrap_loop_subprocess), ("Loop", "subprocess_shell", _wrap_loop_subprocess)),
    # "": the module's own functions (the exec and spawn functions os.system and os.popen do not go through: the
    # first runs a shell with this process's environment, the second goes through subprocess.Popen)
    "os": (("", "execv", _wrap_execv), ("", "execve", _wrap_execve), ("", "execvp", _wrap_exec_searching_path),
           ("", "execvpe", _wrap_exec_searching_path), ("", "posix_spawn", _wrap_posix_spawn),
           ("", "posix_spawnp", _wrap_posix_spawn), ("", "_exit", _wrap_os_exit)),
}
_process_carriers_on = False
_process_hooks_registered = False


def _process_patches(module: ModuleType) -> tuple[tuple[type | ModuleType, str, WrapperFunction], ...]:
    patches = _PROCESS_PATCHES[module.__name__]
    if not all(not class_name or hasattr(module, class_name) for class_name, _, _ in patches):
        # Another thread is importing it (wrapt runs the hook at once for a module in sys.modules, even one
        # still being executed): the import system makes this one wait until that import is done. On the
        # thread importing it (a signal handler's exit flush interrupting the import), it has no class yet
        # to patch or unpatch.
        module = importlib.import_module(module.__name__)
    return tuple((getattr(module, class_name) if class_name else module, method, wrapper)
                 for class_name, method, wrapper in patches if not class_name or hasattr(module, class_name))


def _patch_on_import(module: ModuleType) -> None:
    """wrapt's post-import hook: an exception here would fail the program's import, so none leaves."""
    try:
        if _process_carriers_on:
            _patch(_process_patches(module))
    except Exception as exc:
        report_error("autoinstrument.process_carriers", exc)


def _patch(patches: tuple[tuple[type | ModuleType, str, WrapperFunction], ...]) -> None:
    for owner, name, wrapper in patches:
        current = owner.__dict__.get(name)
        inherited = current is None and isinstance(owner, type)
        if inherited:  # a class's method its base defines (a compiled one, whose attributes cannot be set): wrapped on
            current = next((vars(base)[name] for base in owner.__mro__ if name in vars(base)), None)  # the class
        if current is not None and not getattr(current, "_self_agent_otel_carrier", False):
            patched = wrapt.FunctionWrapper(current, wrapper)
            patched._self_agent_otel_carrier = True  # type: ignore[attr-defined]  # wrapt keeps _self_* on the proxy
            patched._self_agent_otel_inherited = inherited  # type: ignore[attr-defined]
            setattr(owner, name, patched)


def _unpatch(patches: tuple[tuple[type | ModuleType, str, WrapperFunction], ...]) -> None:
    for owner, name, _ in patches:
        current = owner.__dict__.get(name)
        if current is not None and getattr(current, "_self_agent_otel_carrier", False):
            if getattr(current, "_self_agent_otel_inherited", False):
                delattr(owner, name)  # the base's again
            else:
                setattr(owner, name, current.__wrapped__)


def instrument_process_carriers() -> None:
    """Carry the context into ProcessPoolExecutor jobs, multiprocessing children and subprocesses: the
    modules imported now are patched now, the others when they are imported. Idempotent."""
    global _process_carriers_on, _process_hooks_registered
    _process_carriers_on = True
    if not _process_hooks_registered:  # a registered hook runs at once for a module already imported
        _process_hooks_registered = True
        for name in _PROCESS_PATCHES:
            wrapt.register_post_import_hook(_patch_on_import, name)
        return
    for name in _PROCESS_PATCHES:
        module = sys.modules.get(name)
        if module is not None:
            _patch(_process_patches(module))


def uninstrument_process_carriers() -> None:
    global _process_carriers_on
    _process_carriers_on = False
    if signal.raise_signal is _flushing_raise_signal:
        signal.raise_signal = _raise_signal
    for name in _PROCESS_PATCHES:
        module = sys.modules.get(name)
        if module is not None:
            _unpatch(_process_patches(module))


#: The targets of the threads a pool starts, lazily, when a submit needs one (``concurrent.futures`` workers,
#: asyncio's default executor's among them; ``multiprocessing.pool``'s workers and handlers; trio's thread cache,
#: which ``trio.to_thread`` and ``trio.lowlevel.start_thread_soon`` hand their work to): each task runs in the
#: context of its own submit, so the thread itself starts with none, as under plain python, rather than for ever in
#: that of the call that happened to start it (its job, under its span, long ended).
_POOL_THREAD_TARGETS = frozenset({
    ("concurrent.futures.thread", "_worker"), ("multiprocessing.pool", "worker"),
    ("multiprocessing.pool", "Pool._handle_workers"), ("multiprocessing.pool", "Pool._handle_tasks"),
    ("multiprocessing.pool", "Pool._handle_results"), ("trio._core._thread_cache", "WorkerThread._work")})
#: The same for the pool threads that are a class of their own, with no target: a ``ProcessPoolExecutor``'s
#: manager thread, which runs every future's done callbacks.
_POOL_THREAD_CLASSES = frozenset({("concurrent.futures.process", "_ExecutorManagerThread")})


def _wrap_thread_bootstrap(wrapped: Callable[[], None], instance: threading.Thread, args: Args,
                           kwargs: Kwargs) -> None:
    context = getattr(instance, "_otel_context", None)  # what the threading instrumentation took at start()
    inside = _made_inside_of(instance)
    if context is None:
        return wrapped(*args, **kwargs)
    target = getattr(instance, "_target", None)
    if target is not None:
        if (getattr(target, "__module__", None), getattr(target, "__qualname__", None)) in _POOL_THREAD_TARGETS:
            return wrapped(*args, **kwargs)
    elif (type(instance).__module__, type(instance).__qualname__) in _POOL_THREAD_CLASSES:
        return wrapped(*args, **kwargs)
    if inside is not None:  # this thread's own context, for its life
        INSIDE.set(inside)
    token = otel_context.attach(context)
    try:
        return wrapped(*args, **kwargs)
    finally:
        otel_context.detach(token)


#: A thread's id -> the agent-otel calls its maker ran inside, until its first step (see the engine's ``inside``: Python
#: copies no context into a thread, and the OpenTelemetry context the threading instrumentation carries may be one
#: another library made current again). By identity (two threads of a class equal by value are two threads); a thread
#: never started takes its entry with it as it goes.
_made_inside: dict[int, tuple[Entry, weakref.ref[threading.Thread]]] = {}


def _made_inside_of(thread: threading.Thread) -> Entry | None:
    """Read once: the map lets go of it."""
    made = _made_inside.pop(id(thread), None) if _made_inside else None
    return made[0] if made is not None else None


def _wrap_thread_init(wrapped: Callable[..., None], instance: threading.Thread, args: Args, kwargs: Kwargs) -> None:
    """Keep aside, for a new thread's first step, the calls of ours its maker runs inside (``start()`` is the
    threading instrumentation's to wrap: a patch of ours over or under its own is undone with it)."""
    try:
        wrapped(*args, **kwargs)
    except BaseException as error:  # (a bad argument: the program's traceback)
        leave_out_callers_frame(error)
        raise
    inside = INSIDE.get()
    if inside is not None:
        key = id(instance)
        try:  # (not weakref.finalize: its first use registers an exit hook, which changes when the program's run)
            dropped = weakref.ref(instance, lambda _: _made_inside.pop(key, None))
        except TypeError:  # (a subclass with slots and no weak reference: nothing carried)
            return
        _made_inside[key] = (inside, dropped)


def _wrap_work_item_init(wrapped: Callable[..., None], instance: object, args: Args, kwargs: Kwargs) -> None:
    """A ``ThreadPoolExecutor``'s task (its ``_WorkItem``, made by ``submit()``, which the threading instrumentation
    wraps) runs inside the calls of ours its submit ran inside. The instrumentation's wrapper of the task's function
    gives way to ours, which attaches the same context and leaves no frame of its own in the task's tracebacks (its
    ``wrapped_func`` was one in every traceback the program printed of a failed task)."""
    inside = INSIDE.get()
    if len(args) == 4:  # (future, fn, args, kwargs)
        theirs = _instrumentation_task(args[1])
        if theirs is not None:
            args = (args[0], functools.partial(_run_in, theirs[1], inside, theirs[0]), *args[2:])
        elif inside is not None:
            args = (args[0], functools.partial(_run_in, None, inside, args[1]), *args[2:])
    try:
        wrapped(*args, **kwargs)
    except BaseException as error:
        leave_out_callers_frame(error)
        raise


def _instrumentation_task(fn: object) -> tuple[Callable[..., Any], otel_context.Context] | None:
    """The function and context of the threading instrumentation's wrapper of a pool task (its ``wrapped_func``, a
    closure over both), or None for any other callable (a later release's, named or made otherwise, stays as it is)."""
    code = getattr(fn, "__code__", None)
    if code is None or getattr(fn, "__module__", None) != _THREADING_INSTRUMENTATION or code.co_name != "wrapped_func":
        return None
    closure = getattr(fn, "__closure__", None) or ()
    try:
        cells = dict(zip(code.co_freevars, (cell.cell_contents for cell in closure), strict=True))
    except ValueError:  # (an empty cell, another closure than theirs)
        return None
    func, context = cells.get("original_func"), cells.get("otel_context")
    return (func, context) if callable(func) and isinstance(context, otel_context.Context) else None


#: The threading instrumentation attaches the context from ``start()`` in ``Thread.run`` (and
#: ``Timer.run``), which a subclass overriding ``run()`` replaces. ``Thread._bootstrap_inner`` (CPython's,
#: absent elsewhere: then nothing is patched) calls ``run()`` whatever defines it. A new thread and a thread pool's
#: task also carry the calls of ours they were made inside.
_THREAD_PATCHES: tuple[tuple[str, WrapperFunction], ...] = (
    ("_bootstrap_inner", _wrap_thread_bootstrap),
    ("__init__", _wrap_thread_init),
)


def _thread_patches() -> tuple[tuple[type, str, WrapperFunction], ...]:
    """The thread patches, each on the class of ``threading.Thread``'s that defines its method (gevent's ``Thread``,
    once its ``patch_all()`` made it ``threading.Thread``, defines neither: the standard library's class under it does),
    and the thread pool's task."""
    found = ((_thread_class_defining(name), name, wrapper) for name, wrapper in _THREAD_PATCHES)
    return (*((owner, name, wrapper) for owner, name, wrapper in found if owner is not None),
            (_WorkItem, "__init__", _wrap_work_item_init))


def _thread_class_defining(name: str) -> type | None:
    return next((owner for owner in threading.Thread.__mro__ if name in vars(owner)), None)


def instrument_thread_subclasses() -> None:
    """Run every thread, whatever ``run()`` it has, in the context it was started in (with the
    threading instrumentation, which takes that context). Idempotent."""
    _patch(_thread_patches())


#: The module of the threading instrumentation's wrappers.
_THREADING_INSTRUMENTATION = "opentelemetry.instrumentation.threading"


def unwrap_instrumented_thread_run() -> None:
    """Put back the ``run`` of ``Thread`` and ``Timer`` that the threading instrumentation wrapped to attach the
    context taken at ``start()``: its wrapper was a frame of every uncaught thread exception's traceback, which
    ``threading.excepthook`` printed (plain python has none). With ``_bootstrap_inner`` patched, every thread runs
    in that context already; without it (not CPython), the wrapper stays, as the only carrier."""
    defining = _thread_class_defining("_bootstrap_inner")
    if defining is None or not getattr(vars(defining).get("_bootstrap_inner"), "_self_agent_otel_carrier", False):
        return
    for owner in (threading.Thread, threading.Timer):
        current = original = owner.__dict__.get("run")
        while isinstance(original, wrapt.FunctionWrapper) and \
                getattr(getattr(original, "_self_wrapper", None), "__module__", None) == _THREADING_INSTRUMENTATION:
            original = original.__wrapped__
        if original is current:
            continue
        if any(vars(base).get("run") is original for base in owner.__mro__[1:]):
            # a class that defines no run of its own (gevent's Thread and Timer, once its patch_all() made them
            # threading's): the instrumentation set one it inherited, and for gevent's Timer the Thread's run it
            # found through gevent's Thread, which stood for the Timer's (its function was never called)
            delattr(owner, "run")
        else:
            owner.run = original  # type: ignore[method-assign, assignment]  # undoing the instrumentation's patch


def uninstrument_thread_subclasses() -> None:
    _unpatch(_thread_patches())


def _inject_headers(wrapped: Callable[..., None], instance: http.client.HTTPConnection, args: Args,
                    kwargs: Kwargs) -> None:
    try:
        if is_instrumentation_enabled() and _has_context_to_carry():
            headers = args[3] if len(args) > 3 else kwargs.get("headers") or {}
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            # http.client takes names as bytes too: the program's own b"traceparent" is its header as much
            present = {(key.decode("latin-1") if isinstance(key, bytes) else str(key)).lower(): key for key in headers}
            missing = {key: value for key, value in carrier.items() if key.lower() not in present}
            host_key = present.get("baggage")
            if "baggage" in carrier and host_key is not None and isinstance(headers[host_key], str):  # the
                # program's own list, and the job's entries (a value given as bytes is left as it is)
                merged = merged_baggage(headers[host_key], carrier["baggage"])
                if merged is not None:
                    missing[host_key] = merged
            if missing:
                headers = {**headers, **missing}
                if len(args) > 3:
                    args = (*args[:3], headers, *args[4:])
                else:
                    kwargs = {**kwargs, "headers": headers}
    except Exception as exc:
        report_error("autoinstrument.http_headers", exc)
    try:
        return wrapped(*args, **kwargs)
    except BaseException as error:  # (a connection refused)
        leave_out_callers_frame(error)
        raise


def instrument_http_headers() -> None:
    """Add W3C trace context and baggage headers to outgoing ``http.client`` requests. Idempotent."""
    import http.client  # only when the switch is on: it is not otherwise imported at start-up

    current = http.client.HTTPConnection.__dict__["request"]
    if getattr(current, "_self_agent_otel_http", False):
        return
    patched = wrapt.FunctionWrapper(current, _inject_headers)
    patched._self_agent_otel_http = True  # type: ignore[attr-defined]  # wrapt keeps _self_* on the proxy
    http.client.HTTPConnection.request = patched  # type: ignore[method-assign]  # patching the class is the point


def uninstrument_http_headers() -> None:
    import http.client

    current = http.client.HTTPConnection.__dict__["request"]
    if getattr(current, "_self_agent_otel_http", False):
        http.client.HTTPConnection.request = current.__wrapped__  # type: ignore[method-assign]  # undoing the patch
