"""Put on ``PYTHONPATH`` by ``agent-otel run``: runs the ``sitecustomize`` this one shadows, if any, then instruments
every Python process the program starts.

In that order, as in the launcher's own process, where python ran the shadowed one before agent-otel started: under
``opentelemetry-instrument agent-otel run`` (or the OpenTelemetry Operator's ``PYTHONPATH``) that one is the
distro's, which sets up the SDK; agent-otel then adds to that setup, as it does in the launcher. The other way round,
every Python child printed the SDK's "Overriding of current TracerProvider is not allowed" lines on its stderr, and
said its telemetry was off for an exporter name only the distro knows.

``PYTHONPATH`` reaches every interpreter the program starts, a Python 2 one too: this file parses under any of
them (no f-string, no annotation), instruments the interpreters agent-otel supports and only runs the shadowed
``sitecustomize`` in the others, which printed "'import sitecustomize' failed" on their stderr.
"""


def _agent_otel_bootstrap():  # type: () -> None
    # Imports inside the functions: this module is the process's `sitecustomize`, so its namespace
    # stays empty, and a missing agent_otel (another interpreter) is skipped, not an error.
    start = _start_agent_otel  # held here: Python 2 runs the shadowed one in this module, whose names it replaces
    # (and sets to None when it raises)
    try:
        _run_shadowed()
    finally:  # (an error of the shadowed one is still python's to print, as "Error in sitecustomize")
        start()


def _start_agent_otel():  # type: () -> None
    import os
    import sys

    if _a_helper_of_multiprocessing(list(getattr(sys, "orig_argv", ()))):
        return
    if sys.version_info >= (3, 11):
        try:
            from agent_otel._zerocode.launcher import bootstrap_child
        except ImportError:
            pass
        else:
            bootstrap_child()
            return
    if os.environ.get("AGENT_OTEL_PROGRAM_PID") == str(os.getpid()) and sys.stderr is not None:
        # the program agent-otel run started, in an interpreter without agent-otel: said once, on stderr
        sys.stderr.write("agent-otel: %s cannot import agent_otel; this program runs untraced (run it with the"
                         " Python agent-otel is installed in)\n" % sys.executable)


#: The code ``multiprocessing`` runs in a helper process of its own (``python -c ...``), which runs none of the
#: program's code: its resource tracker, started with the first spawn or forkserver worker.
_HELPERS = ("from multiprocessing.resource_tracker import main",)


def _a_helper_of_multiprocessing(argv):  # type: (list[str]) -> bool
    """Whether this process is one of :data:`_HELPERS`: not instrumented (agent-otel is not even imported). It exported
    a series of its own, and its exit flush held it past the program's exit when the Collector did not answer."""
    if "-c" not in argv[:-1]:
        return False
    code = argv[argv.index("-c") + 1]
    return any(code.startswith(helper) for helper in _HELPERS)


def _run_shadowed():  # type: () -> None
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    path = [entry for entry in sys.path if os.path.abspath(entry or ".") != here]
    if sys.version_info >= (3, 5):
        import importlib.machinery
        import importlib.util

        spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
        if spec is not None and spec.loader is not None:
            module = importlib.util.module_from_spec(spec)
            sys.modules["sitecustomize"] = module
            spec.loader.exec_module(module)
    else:
        import imp  # (Python 2: no importlib.util)

        try:
            found = imp.find_module("sitecustomize", path)
        except ImportError:
            return
        try:
            imp.load_module("sitecustomize", *found)
        finally:
            if found[0] is not None:
                found[0].close()


_agent_otel_bootstrap()
