"""Put on ``PYTHONPATH`` by ``agent-otel run``: instruments every Python process the program starts,
then runs the ``sitecustomize`` this one shadows, if any.

``PYTHONPATH`` reaches every interpreter the program starts, a Python 2 one too: this file parses under any of
them (no f-string, no annotation), instruments the interpreters agent-otel supports and only runs the shadowed
``sitecustomize`` in the others, which printed "'import sitecustomize' failed" on their stderr.
"""


def _agent_otel_bootstrap():  # type: () -> None
    # Imports inside the function: this module is the process's `sitecustomize`, so its namespace
    # stays empty, and a missing agent_otel (another interpreter) is skipped, not an error.
    import os
    import sys

    started = False
    if sys.version_info >= (3, 11):
        try:
            from agent_otel._zerocode.launcher import bootstrap_child
        except ImportError:
            pass
        else:
            bootstrap_child()
            started = True
    if not started and os.environ.get("AGENT_OTEL_PROGRAM_PID") == str(os.getpid()) and sys.stderr is not None:
        # the program agent-otel run started, in an interpreter without agent-otel: said once, on stderr
        sys.stderr.write("agent-otel: %s cannot import agent_otel; this program runs untraced (run it with the"
                         " Python agent-otel is installed in)\n" % sys.executable)
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
