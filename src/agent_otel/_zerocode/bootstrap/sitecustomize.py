"""Put on ``PYTHONPATH`` by ``agent-otel run``: instruments every Python process the program starts,
then runs the ``sitecustomize`` this one shadows, if any."""


def _agent_otel_bootstrap() -> None:
    # Imports inside the function: this module is the process's `sitecustomize`, so its namespace
    # stays empty, and a missing agent_otel (another interpreter) is skipped, not an error.
    import importlib.machinery
    import importlib.util
    import os
    import sys

    try:
        from agent_otel._zerocode.launcher import bootstrap_child
    except ImportError:
        # the program agent-otel run started, in an interpreter without agent-otel: said once, on stderr
        if os.environ.get("AGENT_OTEL_PROGRAM_PID") == str(os.getpid()) and sys.stderr is not None:
            sys.stderr.write(f"agent-otel: {sys.executable} cannot import agent_otel; this program runs untraced"
                             " (run it with the Python agent-otel is installed in)\n")
    else:
        bootstrap_child()
    here = os.path.dirname(os.path.abspath(__file__))
    path = [entry for entry in sys.path if os.path.abspath(entry or ".") != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is not None and spec.loader is not None:
        module = importlib.util.module_from_spec(spec)
        sys.modules["sitecustomize"] = module
        spec.loader.exec_module(module)


_agent_otel_bootstrap()
