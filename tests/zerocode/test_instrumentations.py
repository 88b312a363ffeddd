"""`agent-otel run` turns on the OpenTelemetry instrumentations installed in the environment (their
`opentelemetry_instrumentor` entry points), as `opentelemetry-instrument` does; `[instrumentation]
instrumentations` and OTEL_PYTHON_DISABLED_INSTRUMENTATIONS select them; a broken one is counted and the
program runs unchanged; `agent-otel check` lists them and the targets they overlap.

The real official OpenAI instrumentation (opentelemetry-instrumentation-genai-openai, pinned in the test extra)
instruments the real openai SDK, which talks to a loopback fake server; broken and conflicting
instrumentations are test distributions installed into a temporary folder put on PYTHONPATH.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import json
import logging
import os
import re
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from agent_otel import semconv
from agent_otel._zerocode.config import load_file
from agent_otel.errors import ConfigurationError
from tests.support.check_output import instrumentations_section, targets_section
from tests.support.fake_llm import USAGE, FakeLLM
from tests.support.otlp_receiver import OtlpHttpReceiver, attributes_of, data_points_of
from tests.support.polling import wait_until

BIN = Path(sys.executable).parent
OPENAI_SCOPE = "opentelemetry.instrumentation.genai.openai"
PROGRAM = """
import sys
import openai
import toolmod

client = openai.OpenAI(base_url=sys.argv[1] + "/stable/v1", api_key="test", max_retries=0)
response = client.chat.completions.create(model="stable-model", messages=[{"role": "user", "content": "hi"}])
toolmod.work(1)
print("tokens", response.usage.prompt_tokens, response.usage.completion_tokens)
print("to stderr", file=sys.stderr)
sys.exit(3)
"""
BROKEN = '''
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor


class Raises(BaseInstrumentor):
    def instrumentation_dependencies(self):
        return []

    def _instrument(self, **kwargs):
        raise RuntimeError("instrumenting failed on purpose")

    def _uninstrument(self, **kwargs):
        pass
'''

#: A distribution shaped as httpx's: two entry points, and an extra that either library satisfies; only the first
#: library is installed, and the second entry point raises ModuleNotFoundError when it instruments.
EITHER = '''
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor


class Present(BaseInstrumentor):
    def instrumentation_dependencies(self):
        return ["wrapt >= 1"]

    def _instrument(self, **kwargs):
        import wrapt  # noqa: F401

    def _uninstrument(self, **kwargs):
        pass


class Absent(Present):
    def instrumentation_dependencies(self):
        return ["no-such-lib-zc >= 1"]

    def _instrument(self, **kwargs):
        import no_such_lib_zc  # noqa: F401
'''


def install_distribution(site: Path, name: str, entry_points: dict[str, str], requires: tuple[str, ...] = ()) -> None:
    """A distribution as pip leaves it: its `.dist-info` with METADATA and entry_points.txt."""
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n"
                                   + "".join(f"Requires-Dist: {requirement}\n" for requirement in requires))
    (info / "entry_points.txt").write_text("[opentelemetry_instrumentor]\n" + "".join(
        f"{key} = {value}\n" for key, value in entry_points.items()))


def install_library(site: Path, name: str, module_file: str) -> None:
    """A library's distribution as pip leaves it: METADATA, and the RECORD of what it installs (``module_file``)."""
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "RECORD").write_text(f"{module_file},,\n{info.name}/METADATA,,\n{info.name}/RECORD,,\n")


@pytest.fixture
def broken_site(tmp_path: Path) -> Path:
    """One instrumentation that cannot be imported, one that raises when instrumenting, one whose library
    is not installed, and two of one distribution whose extra either library satisfies (httpx's and httpx2's)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "broken_instrumentations_zc.py").write_text(BROKEN)
    install_distribution(site, "zc-broken-instrumentations", {
        "broken_import_zc": "no_such_module_zc:Instrumentor",
        "broken_instrument_zc": "broken_instrumentations_zc:Raises"})
    install_distribution(site, "zc-conflicting-instrumentation", {"conflict_zc": "broken_instrumentations_zc:Raises"},
                         requires=('no-such-lib-zc>=1; extra == "instruments"',))
    (site / "either_instrumentation_zc.py").write_text(EITHER)
    install_distribution(site, "zc-either-instrumentation", {"either_present_zc": "either_instrumentation_zc:Present",
                                                             "either_absent_zc": "either_instrumentation_zc:Absent"},
                         requires=('wrapt>=1; extra == "instruments-any"',
                                   'no-such-lib-zc>=1; extra == "instruments-any"'))
    return site


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "toolmod.py").write_text("def work(n):\n    return n * 2\n")
    (tmp_path / "app.py").write_text(PROGRAM)
    return tmp_path


@pytest.fixture
def servers() -> Iterator[tuple[OtlpHttpReceiver, FakeLLM]]:
    with OtlpHttpReceiver() as receiver, FakeLLM() as llm:
        yield receiver, llm


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("OTEL_", "AGENT_OTEL_")) and key not in ("TRACEPARENT", "BAGGAGE")}
    env.update({"OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none", "OTEL_TRACES_EXPORTER": "none",
                "XDG_CACHE_HOME": str(tmp_path / "cache"), **extra})
    return env


def run_app(project: Path, receiver: OtlpHttpReceiver, llm: FakeLLM, config: str = "",
            **extra: str) -> subprocess.CompletedProcess[str]:
    (project / "agent-otel.toml").write_text(config + '\n[[tool]]\ntarget = "toolmod:work"\n')
    env = environment(project, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                      OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf", OTEL_TRACES_EXPORTER="otlp",
                      OTEL_METRICS_EXPORTER="otlp", **extra)
    return subprocess.run([str(BIN / "agent-otel"), "run", "--", sys.executable, "app.py", llm.url], cwd=project,
                          env=env, capture_output=True, text=True, timeout=120)


def spans_by_scope(receiver: OtlpHttpReceiver) -> list[tuple[str, str, dict[str, Any]]]:
    """(scope, span name, attributes) of every span, once our own tool span has arrived."""
    def spans() -> list[tuple[str, str, dict[str, Any]]]:
        return [(scope_spans.scope.name, span.name, attributes_of(span)) for request in list(receiver.traces)
                for resource_spans in request.resource_spans for scope_spans in resource_spans.scope_spans
                for span in scope_spans.spans]
    wait_until(lambda: any(name == "execute_tool work" for _, name, _ in spans()), "the tool span")
    return spans()


def assert_program_unchanged(result: subprocess.CompletedProcess[str]) -> None:
    assert (result.returncode, result.stdout, result.stderr) == (
        3, f"tokens {USAGE['prompt_tokens']} {USAGE['completion_tokens']}\n", "to stderr\n")


@pytest.mark.parametrize(("config", "env", "on"), [
    ("", {}, True),  # the default: every installed instrumentation, as opentelemetry-instrument
    ('[instrumentation]\ninstrumentations = ["openai"]\n', {}, True),
    ("", {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "requests, openai"}, False),
    ("", {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "*"}, False),
    ("[instrumentation]\ninstrumentations = []\n", {}, False),
    ("[instrumentation]\ninstrumentations = false\n", {}, False),
], ids=["default", "selected", "disabled-by-env", "env-star", "empty-list", "false"])
def test_the_launcher_turns_on_the_installed_openai_instrumentation(
        project: Path, servers: tuple[OtlpHttpReceiver, FakeLLM], config: str, env: dict[str, str],
        on: bool) -> None:
    receiver, llm = servers
    result = run_app(project, receiver, llm, config, **env)
    assert_program_unchanged(result)
    chats = [(name, attributes) for scope, name, attributes in spans_by_scope(receiver) if scope == OPENAI_SCOPE]
    if not on:
        assert chats == []
        return
    assert [name for name, _ in chats] == ["chat stable-model"]
    attributes = chats[0][1]
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (
        USAGE["prompt_tokens"], USAGE["completion_tokens"])


def test_an_instrumentation_loads_when_the_program_imports_its_library_not_before(project: Path) -> None:
    """Loading an instrumentation imports its framework (seconds for an agent framework): a program that never
    imports the framework does not get it imported, one that does gets it instrumented (the test above)."""
    frameworks = ("openai", "agents", "langchain", "smolagents")
    probe = f"import sys; print([name for name in {frameworks!r} if name in sys.modules])"
    result = subprocess.run([str(BIN / "agent-otel"), "run", "--", sys.executable, "-c", probe], cwd=project,
                            env=environment(project), capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout) == (0, "[]\n"), result.stderr
    late = "import openai; print(type(openai.resources.chat.completions.Completions.create).__name__)"
    result = subprocess.run([str(BIN / "agent-otel"), "run", "--", sys.executable, "-c", late], cwd=project,
                            env=environment(project), capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout) == (0, "BoundFunctionWrapper\n"), result.stderr  # wrapped on import


#: Two threads importing httpx and httpx2 at once, then whether the httpx instrumentation patched both.
#: A program's first lines that keep what agent-otel logs, in ``said``.
KEEP_LOGS = """
import logging
said = []
class Keep(logging.Handler):
    def emit(self, record):
        said.append(record.getMessage())
logging.getLogger("agent_otel").addHandler(Keep())
"""
CONCURRENT_IMPORTS = KEEP_LOGS + """
import importlib, threading, wrapt
threads = [threading.Thread(target=importlib.import_module, args=(name,)) for name in ("httpx", "httpx2")]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
import httpx, httpx2
print([isinstance(module.HTTPTransport.__dict__["handle_request"], wrapt.FunctionWrapper)
       for module in (httpx, httpx2)], said)
"""


def test_an_instrumentation_of_either_library_is_on_for_both_when_threads_import_them_at_once(project: Path) -> None:
    """The httpx instrumentation names httpx and httpx2 in its ``instruments-any`` extra and imports both. Loaded on
    the import of one of them (a post-import hook), it imported the other, whose hook in the thread importing it
    meanwhile loaded the httpx2 instrumentation from the half-run module: Python raised ``_DeadlockError`` and httpx2
    went uninstrumented, every time. Such an instrumentation loads at start."""
    result = subprocess.run([str(BIN / "agent-otel"), "run", "--", sys.executable, "-c", CONCURRENT_IMPORTS],
                            cwd=project, env=environment(project), capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout) == (0, "[True, True] []\n"), result.stderr


#: An instrumentation of a library that lives in a namespace package, as OpenInference's of ``llama-index-core``
#: (``llama_index`` has no ``__init__.py``: its packages come from many distributions).
NAMESPACED_INSTRUMENTATION = '''
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor


class Instrumentor(BaseInstrumentor):
    def instrumentation_dependencies(self):
        return ["zc-spaced-core >= 1"]

    def _instrument(self, **kwargs):
        import zcspaced.core
        zcspaced.core.INSTRUMENTED = True

    def _uninstrument(self, **kwargs):
        pass
'''


def test_an_instrumentation_of_a_library_in_a_namespace_package_loads_and_our_targets_there_are_wrapped(
        tmp_path: Path) -> None:
    """The launcher loads an instrumentation when the program imports its library, by an import hook on the
    library's top-level package. For a namespace package (``llama_index``) that hook never fires: OpenInference's
    llama-index instrumentation never loaded, and every target of ours under ``llama_index`` waited for it, never
    wrapped, with nothing said or counted. The hook is on the library's own package in it (``llama_index.core``)."""
    site = tmp_path / "site"
    (site / "zcspaced" / "core").mkdir(parents=True)  # no zcspaced/__init__.py: a namespace package
    (site / "zcspaced" / "core" / "__init__.py").write_text(
        "class Tool:\n    def call(self, n):\n        return n * 2\n")
    install_library(site, "zc-spaced-core", "zcspaced/core/__init__.py")
    (site / "zc_spaced_instrumentation.py").write_text(NAMESPACED_INSTRUMENTATION)
    install_distribution(site, "zc-spaced-instrumentation", {"zc_spaced": "zc_spaced_instrumentation:Instrumentor"},
                         requires=('zc-spaced-core>=1; extra == "instruments"',))
    (tmp_path / "agent-otel.toml").write_text('[[tool]]\ntarget = "zcspaced.core:Tool.call"\nname = "double"\n')
    (tmp_path / "app.py").write_text(textwrap.dedent("""
        import zcspaced.core
        tool = zcspaced.core.Tool()
        print(tool.call(21), getattr(zcspaced.core, "INSTRUMENTED", False),
              hasattr(vars(zcspaced.core.Tool)["call"], "__wrapped__"))
    """))
    result = subprocess.run([str(BIN / "agent-otel"), "run", "--", sys.executable, "app.py"], cwd=tmp_path,
                            env=environment(tmp_path, PYTHONPATH=str(site)), capture_output=True, text=True,
                            timeout=120)
    assert (result.returncode, result.stdout) == (0, "42 True True\n"), result.stderr
    # check's overlap note names the library's own package in the namespace, not every package in it
    (site / "zcspaced" / "other").mkdir()
    (site / "zcspaced" / "other" / "__init__.py").write_text("def unrelated():\n    return 1\n")
    with (tmp_path / "agent-otel.toml").open("a") as config:
        config.write('[[tool]]\ntarget = "zcspaced.other:unrelated"\n')
    result = subprocess.run([str(BIN / "agent-otel"), "check"], cwd=tmp_path, capture_output=True, text=True,
                            env=environment(tmp_path, PYTHONPATH=str(site)), timeout=120)
    targets = targets_section(result.stdout)
    core = next(i for i, line in enumerate(targets) if line.startswith("zcspaced.core:Tool.call "))
    other = next(i for i, line in enumerate(targets) if line.startswith("zcspaced.other:unrelated "))
    assert targets[core + 1].startswith("    overlaps zc_spaced:"), result.stdout
    assert not targets[other + 1:other + 2] or not targets[other + 1].startswith("    "), result.stdout


#: An instrumentation whose distribution names its library in no ``instruments`` extra, only in its
#: ``instrumentation_dependencies()`` (OpenInference's LiteLLM one), its library imported only by ``instrument()``.
UNDECLARED_INSTRUMENTATION = '''
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor


class Instrumentor(BaseInstrumentor):
    def instrumentation_dependencies(self):
        return ["zc-undeclared-lib >= 1"]

    def _instrument(self, **kwargs):
        import zcundeclared
        zcundeclared.INSTRUMENTED = True

    def _uninstrument(self, **kwargs):
        pass
'''
#: An instrumentor that copies ``BaseInstrumentor`` without inheriting it, and has no
#: ``instrumentation_dependencies()`` (atomic-agents' own, which instruments its own library).
COPIED_INSTRUMENTATION = '''
class Instrumentor:
    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def instrument(self, **kwargs):
        self.is_instrumented_by_opentelemetry = True

    def uninstrument(self, **kwargs):
        pass
'''


def test_an_instrumentation_naming_its_library_only_in_its_code_loads_when_the_program_imports_it(
        tmp_path: Path) -> None:
    """OpenInference's LiteLLM instrumentation names ``litellm`` in no ``instruments`` extra: the launcher loaded it as
    every process started, which imported LiteLLM (2.2 s added to ``aider --version``, and LiteLLM's development mode
    loaded a ``.env`` into the program's environment before aider could set its production mode; probe p51a). The
    libraries its ``instrumentation_dependencies()`` names are those it waits for."""
    site = tmp_path / "site"
    (site / "zcundeclared").mkdir(parents=True)
    (site / "zcundeclared" / "__init__.py").write_text("def ask(n):\n    return n + 1\n")
    install_library(site, "zc-undeclared-lib", "zcundeclared/__init__.py")
    (site / "zc_undeclared_instrumentation.py").write_text(UNDECLARED_INSTRUMENTATION)
    install_distribution(site, "zc-undeclared-instrumentation",
                         {"zc_undeclared": "zc_undeclared_instrumentation:Instrumentor"})
    (tmp_path / "app.py").write_text(textwrap.dedent("""
        import sys
        at_start = "zcundeclared" in sys.modules
        import zcundeclared
        print(at_start, zcundeclared.ask(1), getattr(zcundeclared, "INSTRUMENTED", False))
    """))
    result = subprocess.run([str(BIN / "agent-otel"), "run", "--", sys.executable, "app.py"], cwd=tmp_path,
                            env=environment(tmp_path, PYTHONPATH=str(site)), capture_output=True, text=True,
                            timeout=120)
    assert (result.returncode, result.stdout) == (0, "False 2 True\n"), result.stderr


def test_check_lists_an_instrumentor_without_its_dependencies_method_as_on(tmp_path: Path) -> None:
    """atomic-agents' instrumentor copies ``BaseInstrumentor`` without inheriting it: ``agent-otel check`` said "error:
    cannot load ... AttributeError" and exited 1, though ``agent-otel run`` loads it, as ``opentelemetry-instrument``
    does (probe p51c). It instruments its own distribution's library, which its targets overlap."""
    site = tmp_path / "site"
    (site / "zccopied").mkdir(parents=True)
    (site / "zccopied" / "__init__.py").write_text("def run(n):\n    return n\n")
    (site / "zccopied" / "observability.py").write_text(COPIED_INSTRUMENTATION)
    install_library(site, "zc-copied", "zccopied/__init__.py")
    entry_points = site / "zc_copied-1.0.dist-info" / "entry_points.txt"
    entry_points.write_text("[opentelemetry_instrumentor]\nzc_copied = zccopied.observability:Instrumentor\n")
    (tmp_path / "agent-otel.toml").write_text('[[agent]]\ntarget = "zccopied:run"\nname = "runner"\n')
    result = subprocess.run([str(BIN / "agent-otel"), "check"], cwd=tmp_path, capture_output=True, text=True,
                            env=environment(tmp_path, PYTHONPATH=str(site)), timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    [row] = [line for line in instrumentations_section(result.stdout) if line.startswith("zc_copied ")]
    assert "on: instruments zc-copied" in row, row
    targets = targets_section(result.stdout)
    runner = next(i for i, line in enumerate(targets) if line.startswith("zccopied:run "))
    assert targets[runner + 1].startswith("    overlaps zc_copied:"), result.stdout


#: An instrumentation whose module imports its library as it loads (OpenLLMetry's of ``openai``), and whose
#: ``instrument()`` counts how many times it wrapped.
REENTRANT_INSTRUMENTATION = '''
import zcreent
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor


class Instrumentor(BaseInstrumentor):
    def instrumentation_dependencies(self):
        return ["zc-reentrant-lib >= 1"]

    def _instrument(self, **kwargs):
        zcreent.WRAPPED[__name__] = zcreent.WRAPPED.get(__name__, 0) + 1

    def _uninstrument(self, **kwargs):
        pass
'''
#: The library: with ``ZC_HOLD`` set, its import waits (as a slow one would) until an ``instrument()`` imports it too.
REENTRANT_LIBRARY = """
import os
WRAPPED = {}
if os.environ.get("ZC_HOLD"):
    import zcsync
    zcsync.IMPORTING.set()
    zcsync.INSTRUMENTING.wait(60)
"""
#: A program that turns it on itself, as an SDK with a pipeline of its own does (Traceloop's ``init()``,
#: Phoenix's ``register()``): first importing the instrumentation, which imports the library; or calling the
#: ``instrument()`` of one that imports the library only then, alone or while another thread imports the library.
REENTRANT_PROGRAM = KEEP_LOGS + """
import sys, threading
if sys.argv[1] == "module":
    from zc_reentrant_instrumentation import Instrumentor
else:
    from zc_late_instrumentation import Instrumentor
if sys.argv[1] == "thread":
    import zcsync
    importer = threading.Thread(target=__import__, args=("zcreent",))
    importer.start()
    zcsync.IMPORTING.wait(60)
Instrumentor().instrument()
if sys.argv[1] == "thread":
    importer.join()
import zcreent
print(zcreent.WRAPPED[Instrumentor.__module__], Instrumentor().is_instrumented_by_opentelemetry, said)
"""


def test_an_instrumentation_the_program_turns_on_as_its_library_is_imported_is_left_to_it(tmp_path: Path) -> None:
    """The launcher loads an instrumentation when the program imports its library. A program that turns one on
    itself imports the library inside that: from the instrumentation's module (Traceloop's ``init()`` imports
    OpenLLMetry's ``openai`` one), whose entry point was then loaded half run ("partially initialized module",
    counted, and the instrumentation said to be off while the program turned it on); or from its ``instrument()``
    (OpenInference's, called by Phoenix's ``register()``), before the instrumentor is marked on, so that it was
    instrumented a second time, and every call counted twice; also when the import that runs the hook is another
    thread's, which the ``instrument()`` waits for."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "zcreent.py").write_text(REENTRANT_LIBRARY)
    (site / "zcsync.py").write_text("import threading\n"
                                    "IMPORTING, INSTRUMENTING = threading.Event(), threading.Event()\n")
    install_library(site, "zc-reentrant-lib", "zcreent.py")
    (site / "zc_reentrant_instrumentation.py").write_text(REENTRANT_INSTRUMENTATION)
    (site / "zc_late_instrumentation.py").write_text(
        REENTRANT_INSTRUMENTATION.replace("import zcreent\n", "", 1).replace(
            "        zcreent.WRAPPED[", "        import zcsync\n        zcsync.INSTRUMENTING.set()\n"
                               "        import zcreent\n        zcreent.WRAPPED["))
    install_distribution(site, "zc-reentrant-instrumentation", {
        "zc_reentrant": "zc_reentrant_instrumentation:Instrumentor", "zc_late": "zc_late_instrumentation:Instrumentor"},
                         requires=('zc-reentrant-lib>=1; extra == "instruments"',))
    (tmp_path / "app.py").write_text(REENTRANT_PROGRAM)
    for how in ("instrument", "module", "thread"):
        hold = {"ZC_HOLD": "1"} if how == "thread" else {}
        result = subprocess.run([str(BIN / "agent-otel"), "run", "--", sys.executable, "app.py", how], cwd=tmp_path,
                                env=environment(tmp_path, PYTHONPATH=str(site), **hold), capture_output=True,
                                text=True, timeout=120)
        assert (result.returncode, result.stdout, result.stderr) == (
            0, "1 True []\n", "agent-otel: no configuration found; running with SDK setup only\n"), (how, result)


def errors_counted(receiver: OtlpHttpReceiver, stage: str) -> float:
    """The last value exported of agent_otel.instrumentation.errors for ``stage`` (a cumulative counter)."""
    values = [point.as_int or point.as_double for metric in receiver.metrics_named("agent_otel.instrumentation.errors")
              for point in data_points_of(metric) if attributes_of(point).get("agent_otel.stage") == stage]
    return values[-1] if values else 0


def test_a_broken_instrumentation_is_counted_and_the_program_runs_unchanged(
        project: Path, servers: tuple[OtlpHttpReceiver, FakeLLM], broken_site: Path) -> None:
    receiver, llm = servers
    result = run_app(project, receiver, llm, PYTHONPATH=str(broken_site))
    assert_program_unchanged(result)
    scopes = [scope for scope, _, _ in spans_by_scope(receiver)]
    assert OPENAI_SCOPE in scopes  # the others are still on
    wait_until(lambda: errors_counted(receiver, "autoinstrument.instrumentation") > 0, "the error count")
    # not the conflict, nor either_absent_zc (httpx2's case: counted in every process): their libraries are absent
    assert errors_counted(receiver, "autoinstrument.instrumentation") == 2


def test_python_children_of_the_program_turn_them_on_too(
        project: Path, servers: tuple[OtlpHttpReceiver, FakeLLM]) -> None:
    receiver, llm = servers
    (project / "parent.py").write_text("import subprocess, sys\n"
                                       "sys.exit(subprocess.run([sys.executable, 'app.py', sys.argv[1]]).returncode)\n")
    (project / "agent-otel.toml").write_text('[[tool]]\ntarget = "toolmod:work"\n')
    env = environment(project, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                      OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf", OTEL_TRACES_EXPORTER="otlp")
    result = subprocess.run([str(BIN / "agent-otel"), "run", "--", "sh", "-c", f'"$0" parent.py {llm.url}',
                             sys.executable], cwd=project, env=env, capture_output=True, text=True, timeout=120)
    assert_program_unchanged(result)
    assert [name for scope, name, _ in spans_by_scope(receiver) if scope == OPENAI_SCOPE] == ["chat stable-model"]


def test_forked_workers_export_the_spans_of_an_instrumentation_turned_on_before_the_fork(
        project: Path, servers: tuple[OtlpHttpReceiver, FakeLLM]) -> None:
    """The instrumentation's tracer is made when the program imports openai, in the parent; the calls are made in
    the workers of a forking pool (as in a prefork server): each worker exports its own, with its own resource, and
    the span bridge counts them there. Before, every one of them was lost."""
    receiver, llm = servers
    (project / "pool.py").write_text(textwrap.dedent("""
        import multiprocessing, os, sys
        import openai

        def ask(_):
            client = openai.OpenAI(base_url=sys.argv[1] + "/stable/v1", api_key="test", max_retries=0)
            client.chat.completions.create(model="stable-model", messages=[{"role": "user", "content": "hi"}])
            return os.getpid()

        if __name__ == "__main__":
            with multiprocessing.get_context("fork").Pool(2) as pool:
                print(sorted(set(pool.map(ask, range(4), chunksize=1))))
    """))
    (project / "agent-otel.toml").write_text("")
    env = environment(project, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                      OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf", OTEL_TRACES_EXPORTER="otlp",
                      OTEL_METRICS_EXPORTER="otlp")
    result = subprocess.run([str(BIN / "agent-otel"), "run", "--", sys.executable, "pool.py", llm.url], cwd=project,
                            env=env, capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    workers = set(json.loads(result.stdout))

    def chats_per_process() -> Counter[int]:
        return Counter(attributes_of(rs.resource).get("process.pid") for request in list(receiver.traces)
                       for rs in request.resource_spans for scope in rs.scope_spans if scope.scope.name == OPENAI_SCOPE
                       for _ in scope.spans)

    def calls_per_process(scope_name: str, metric_name: str) -> Counter[int]:
        counts: Counter[int] = Counter()
        for request in list(receiver.metrics):
            for rm in request.resource_metrics:
                for scope in rm.scope_metrics:
                    for metric in scope.metrics:
                        if metric.name == metric_name and scope.scope.name == scope_name:
                            counts[attributes_of(rm.resource).get("process.pid")] = sum(
                                point.count for point in data_points_of(metric))
        return counts

    wait_until(lambda: sum(chats_per_process().values()) == 4, "the four chat spans")
    assert set(chats_per_process()) == workers
    # the bridge's count of those calls, and the instrumentation's own histogram (made in the parent, too)
    for scope_name, metric_name in (("agent_otel", semconv.CLIENT_INFERENCE_DURATION.name),
                                    (OPENAI_SCOPE, "gen_ai.client.operation.duration")):
        counted = functools.partial(calls_per_process, scope_name, metric_name)
        wait_until(lambda: sum(counted().values()) == 4, f"{metric_name}: 4 calls")  # noqa: B023  # used in its loop
        assert set(counted()) == workers


def check_lines(stdout: str) -> list[tuple[str, str, str]]:
    """The instrumentations section's rows as (name, distribution, status): two distributions may register one name
    (the official GenAI instrumentation's ``anthropic`` and OpenInference's)."""
    lines = instrumentations_section(stdout)
    assert lines[0].split() == ["INSTRUMENTATION", "DISTRIBUTION", "STATUS"]
    return [cast(tuple[str, str, str], tuple(re.split(r"\s{2,}", line, maxsplit=2))) for line in lines[1:-1]]


def check_rows(stdout: str) -> dict[str, tuple[str, str]]:
    """The instrumentations section as {name: (distribution, status)} (of a name two register, the last)."""
    return {name: (distribution, status) for name, distribution, status in check_lines(stdout)}


def test_check_lists_the_instrumentations_and_the_targets_they_overlap(project: Path, broken_site: Path) -> None:
    (project / "agent-otel.toml").write_text(textwrap.dedent("""
        [instrumentation]
        threads = false
        [[provider]]
        target = "openai.resources.chat.completions:Completions.create"
        provider = "openai"
        [[provider]]
        target = "openai.resources.embeddings:Embeddings.create"
        provider = "openai"
        [[tool]]
        target = "toolmod:work"
        [[retry]]
        target = "openai._base_client:SyncAPIClient._sleep_for_retry"
    """))
    result = subprocess.run([str(BIN / "agent-otel"), "check"], cwd=project, capture_output=True, text=True,
                            env=environment(project, PYTHONPATH=str(broken_site)), timeout=120)
    assert result.returncode == 1, result.stderr  # an instrumentation that cannot be loaded is an error
    targets = targets_section(result.stdout)
    provider = next(i for i, line in enumerate(targets) if line.startswith("openai.resources.chat.completions:"))
    assert targets[provider + 1] == ("    overlaps openai: counted once where its span names the call as this target "
                                     "does (kind and operation), see README")
    assert targets[provider + 2].startswith("openai.resources.embeddings:")  # (a chat call: one note)
    # an embeddings call left at the default operation, chat: counted beside the instrumentation's embeddings call
    assert targets[provider + 4] == ('    an embeddings call? without operation = "embeddings" it is a chat call, '
                                     "counted beside an instrumentation's embeddings span inside it")
    tool = next(i for i, line in enumerate(targets) if line.startswith("toolmod:work "))
    assert not targets[tool + 1].startswith("    ")  # toolmod is no library an instrumentation instruments
    retry = next(i for i, line in enumerate(targets) if line.startswith("openai._base_client:"))
    assert not targets[retry + 1].startswith("    ")  # a marker records no call: it overlaps nothing
    rows = check_rows(result.stdout)
    distribution = "opentelemetry-instrumentation-genai-openai"
    assert rows["openai"] == (f"{distribution} {importlib.metadata.version(distribution)}",
                              "on: instruments openai >= 1.26.0, < 4")
    assert rows["broken_import_zc"] == ("zc-broken-instrumentations 1.0", "error: cannot load "
                                        "no_such_module_zc:Instrumentor: ModuleNotFoundError: No module named "
                                        "'no_such_module_zc'")
    assert rows["broken_instrument_zc"] == ("zc-broken-instrumentations 1.0", "on")  # fails only when run
    assert rows["conflict_zc"] == ("zc-conflicting-instrumentation 1.0",
                                   "dependency conflict: needs no-such-lib-zc>=1, not installed")
    assert rows["either_present_zc"] == ("zc-either-instrumentation 1.0", "on: instruments wrapt >= 1")
    assert rows["either_absent_zc"] == ("zc-either-instrumentation 1.0",
                                 "dependency conflict: needs no-such-lib-zc >= 1, not installed")  # it said on
    assert rows["threading"][1] == "off by [instrumentation] threads = false"
    assert rows["system_metrics"][1] == "on by [instrumentation] system_metrics = true"
    assert "agent_otel" not in rows  # the configuration itself
    listed = check_lines(result.stdout)
    on = sum(status.startswith("on") for _, _, status in listed)
    assert instrumentations_section(result.stdout)[-1] == (
        f"instrumentations: {len(listed)} installed, {on} on, 1 error")


def test_check_says_what_selects_or_disables_each(project: Path, broken_site: Path) -> None:
    (project / "agent-otel.toml").write_text('[instrumentation]\ninstrumentations = ["openai", "conflict_zc", '
                                             '"absent_zc"]\n[[tool]]\ntarget = "toolmod:work"\n')
    env = environment(project, PYTHONPATH=str(broken_site), OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="openai")
    result = subprocess.run([str(BIN / "agent-otel"), "check"], cwd=project, capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 1, result.stderr  # a selected name that is not installed is an error
    rows = check_rows(result.stdout)
    assert rows["openai"][1] == "disabled by OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"
    assert rows["conflict_zc"][1] == "dependency conflict: needs no-such-lib-zc>=1, not installed"
    assert rows["broken_import_zc"][1] == "not in [instrumentation] instrumentations"
    assert rows["absent_zc"] == ("-", "error: named in [instrumentation] instrumentations, not installed")


def test_check_says_the_logging_instrumentation_is_left_off_with_no_logs_pipeline(project: Path) -> None:
    """`agent-otel run` leaves the logging instrumentation off where no SDK LoggerProvider is installed (its handler
    sent the records nowhere and hid ``logging.warning()``'s output); `check` said it was on."""
    (project / "agent-otel.toml").write_text('[[tool]]\ntarget = "toolmod:work"\n')
    for extra, status in (({}, "off: no SDK LoggerProvider is installed, so left to the program "
                                "(OTEL_PYTHON_LOG_CORRELATION=true turns it on without its handler)"),
                          ({"OTEL_PYTHON_LOG_CORRELATION": "true"}, "on")):
        result = subprocess.run([str(BIN / "agent-otel"), "check"], cwd=project, capture_output=True, text=True,
                                env=environment(project, **extra), timeout=120)
        assert result.returncode == 0, result.stderr
        assert check_rows(result.stdout)["logging"][1] == status


@pytest.mark.parametrize(("value", "key", "problem"), [
    ('"openai"', "instrumentation.instrumentations",
     "expected true, false or an array of instrumentation names, got a string 'openai'"),
    ("[1]", "instrumentation.instrumentations[0]",
     'expected the name of an opentelemetry_instrumentor entry point (e.g. "openai"), got an integer (1)'),
    ('["open ai"]', "instrumentation.instrumentations[0]",
     "expected the name of an opentelemetry_instrumentor entry point (e.g. \"openai\"), got a string 'open ai'"),
    ('["openai", "openai"]', "instrumentation.instrumentations[1]", "'openai' is listed twice"),
    ('["agent_otel"]', "instrumentation.instrumentations[0]",
     "'agent_otel' is agent-otel itself, always on under the launcher; remove it"),
    ('["threading"]', "instrumentation.instrumentations[0]",
     "'threading' is turned on and off by [instrumentation] threads; remove it"),
])
def test_a_bad_selection_names_file_key_and_problem(tmp_path: Path, value: str, key: str, problem: str) -> None:
    file = tmp_path / "agent-otel.toml"
    file.write_text(f"[instrumentation]\ninstrumentations = {value}\n")
    with pytest.raises(ConfigurationError) as raised:
        load_file(file)
    assert str(raised.value) == f"{file}: {key}: {problem}"


def test_the_selection_is_read_as_data(tmp_path: Path) -> None:
    file = tmp_path / "agent-otel.toml"
    file.write_text('[instrumentation]\ninstrumentations = ["openai", "langchain"]\n')
    assert load_file(file).switches.instrumentations == ("openai", "langchain")
    file.write_text("[instrumentation]\nthreads = false\n")
    assert load_file(file).switches.instrumentations is True  # the default: all installed


def _import_names_from_file_list(dist: importlib.metadata.Distribution) -> set[str]:
    """The reference: the top-level names of a distribution's ``files`` (one object built per file); in a namespace
    package, the outermost packages and modules of its own."""
    names = set()
    for file in dist.files or ():
        top = file.parts[0]
        if not top.endswith((".dist-info", ".data", ".pth")) and top not in ("..", "__pycache__") \
                and (len(file.parts) > 1 or top.endswith(".py")):
            names.add(top.removesuffix(".py"))
    namespaces = {name for name in names if (spec := importlib.util.find_spec(name)) is not None
                  and spec.origin is None}
    packages = {file.parts[:-1] for file in dist.files or () if file.name == "__init__.py"}
    for file in dist.files or ():
        if file.parts[0] in namespaces and file.suffix == ".py" and "__pycache__" not in file.parts:
            depth = next(depth for depth in range(2, len(file.parts) + 1)
                         if file.parts[:depth] in packages or depth == len(file.parts))
            names.add(".".join(file.parts[:depth]).removesuffix(".py"))
    return names - namespaces


def test_the_modules_a_library_installs_are_read_off_its_record_as_off_its_file_list() -> None:
    """Which modules an instrumentation instruments comes from its library's RECORD, read as text (the
    openai SDK's 4,000 files took 30 ms of every start as objects); the names are those of the file list."""
    from agent_otel._zerocode.instrumentations import _import_names

    without_top_level = [dist for dist in importlib.metadata.distributions()
                         if not dist.read_text("top_level.txt") and dist.files]
    assert "openai" in {dist.metadata["Name"] for dist in without_top_level}
    for dist in without_top_level:
        assert _import_names(dist.metadata["Name"]) == _import_names_from_file_list(dist), dist.metadata["Name"]


RAW_RESPONSE_PROGRAM = """
import sys
import openai
import toolmod

client = openai.OpenAI(base_url=sys.argv[1] + "/stable/v1", api_key="test", max_retries=0)
raw = client.chat.completions.with_raw_response.create(
    model="stable-model", messages=[{"role": "user", "content": "hi"}])
print("tokens", raw.parse().usage.prompt_tokens)
toolmod.work(1)
"""


def test_a_provider_target_on_a_method_the_instrumentation_wraps_too_is_the_outer_span(
        project: Path, servers: tuple[OtlpHttpReceiver, FakeLLM]) -> None:
    """The README's `[[provider]]` on `Completions.create` beside the openai instrumentation: ours is the outer span,
    and a call through `with_raw_response` (as LangChain's ChatOpenAI makes it), whose result shows no usage to us,
    gets the tokens of the instrumentation's span inside it. Before, the submodule's hook wrapped ours first and the
    instrumentation, loaded as the `openai` package finished importing, wrapped it: ours inside, no tokens, no cost."""
    receiver, llm = servers
    (project / "app.py").write_text(RAW_RESPONSE_PROGRAM)
    config = ('[[provider]]\ntarget = "openai.resources.chat.completions:Completions.create"\n'
              'provider = "openai"\nmodel = "gpt-4o"\n')
    result = run_app(project, receiver, llm, config)
    assert (result.returncode, result.stdout) == (0, f"tokens {USAGE['prompt_tokens']}\n"), result.stderr
    spans_by_scope(receiver)  # once the tool span, the last one, has arrived
    spans = [(scope_spans.scope.name, span) for request in list(receiver.traces)
             for resource_spans in request.resource_spans for scope_spans in resource_spans.scope_spans
             for span in scope_spans.spans if span.name.startswith("chat ")]
    [ours] = [span for scope, span in spans if scope == "agent_otel"]
    [theirs] = [span for scope, span in spans if scope == OPENAI_SCOPE]
    assert theirs.parent_span_id == ours.span_id
    assert attributes_of(ours)["gen_ai.usage.input_tokens"] == USAGE["prompt_tokens"]


def test_opentelemetry_instrument_keeps_the_distros_system_metrics(tmp_path: Path) -> None:
    """The distro instruments SystemMetricsInstrumentor (a singleton) before agent-otel's entry point; configure()
    then constructed it again with its own config, which replaced the one the distro's callbacks read: a
    "Callback failed ... KeyError" traceback per callback at each collection, and no system.* data."""
    (tmp_path / "agent-otel.toml").write_text('[[tool]]\ntarget = "toolmod:work"\n')
    (tmp_path / "toolmod.py").write_text("def work(n):\n    return n * 2\n\nprint(work(21))\n")
    with OtlpHttpReceiver() as receiver:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
        env.update(OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="otlp", OTEL_LOGS_EXPORTER="none",
                   OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf")
        result = subprocess.run([str(Path(sys.executable).parent / "opentelemetry-instrument"), sys.executable,
                                 "toolmod.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert (result.returncode, result.stdout) == (0, "42\n")
        assert "Callback failed" not in result.stderr
        wait_until(lambda: {"system.cpu.time", "process.cpu.time"} <= receiver.metric_names(),
                   "the distro's system and process metrics")
        assert all(data_points_of(metric) for metric in receiver.metrics_named("system.memory.usage"))


def _what_it_says(stderr: str) -> list[str]:
    """A program's stderr without the frames of a traceback and the objects' addresses: what was said, for comparing a
    run with agent-otel and one without (whose tracebacks pass through other instrumentations' frames)."""
    return [re.sub(r" at 0x[0-9a-f]+", "", line) for line in stderr.splitlines()
            if line and not line.startswith((" ", "Traceback "))]


@pytest.mark.parametrize("exporter", ["console", "otlp_proto_http"])
def test_opentelemetry_instrument_without_a_config_file_still_sets_agent_otel_up(tmp_path: Path,
                                                                                exporter: str) -> None:
    """No agent-otel.toml: no targets to wrap, but agent-otel's entry point returned before configure(), silently
    (a warning on a logger that shows nothing): no span processor on the distro's provider, so ``user.id`` was
    exported in clear and another library's GenAI spans were not bridged. So it did, the same way, for an exporter
    name the distro knows and agent-otel's own list lacks (``otlp_proto_http``): the distro's exporters are not
    agent-otel's to check. And the threading and system-metrics instrumentations, which configure() turned on
    before the distro's loop reached them, made the distro print "Attempting to instrument while already
    instrumented" twice on the program's stderr."""
    (tmp_path / "app.py").write_text(
        "from opentelemetry import trace\n"
        "print([type(p).__name__ for p in trace.get_tracer_provider()._active_span_processor._span_processors])\n")
    # agent-otel's entry point first in the distro's loop (the order is the file system's): a link to its metadata
    # in a folder first on the path, where the distributions are found first
    first = tmp_path / "first"
    first.mkdir()
    installed = Path(str(importlib.metadata.distribution("agent-otel")._path))  # type: ignore[attr-defined]
    (first / installed.name).symlink_to(installed)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENT_OTEL_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(first), env.get("PYTHONPATH"))))
    with OtlpHttpReceiver() as receiver:
        env.update(OTEL_TRACES_EXPORTER=exporter, OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none",
                   OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"{receiver.endpoint}/v1/traces",
                   OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="http/protobuf")
        command = [str(Path(sys.executable).parent / "opentelemetry-instrument"), sys.executable, "app.py"]
        result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        # the distro without agent-otel: on Python 3.12 the logging instrumentation's handler prints that it cannot
        # start its thread at exit, agent-otel or not
        without = {**env, "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "agent_otel"}
        plain = subprocess.run(command, cwd=tmp_path, env=without, capture_output=True, text=True, timeout=120)
    assert (result.returncode, _what_it_says(result.stderr)) == (0, _what_it_says(plain.stderr))
    assert "AgentOtelSpanProcessor" in result.stdout.splitlines()[0]
    assert "AgentOtelSpanProcessor" not in plain.stdout.splitlines()[0]


def test_a_name_no_installed_instrumentation_has_is_said_once_and_the_program_runs(tmp_path: Path) -> None:
    """Before, a typo in `instrumentations = ["opnai"]` was silent under `agent-otel run` (no instrumentation
    loaded, exit 0) while `agent-otel check` flagged it. As `check` counts it an error of the environment (exit 1,
    not 2 for an invalid file), the program runs, and the launcher says so on one line; its children do not."""
    (tmp_path / "agent-otel.toml").write_text('[instrumentation]\ninstrumentations = ["opnai"]\n')
    (tmp_path / "app.py").write_text("import subprocess, sys\nsubprocess.run([sys.executable, '-c', 'print(1)'])\n"
                                     "print('ran')\n")
    result = subprocess.run([str(BIN / "agent-otel"), "run", "--", sys.executable, "app.py"], cwd=tmp_path,
                            env=environment(tmp_path), capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout) == (0, "1\nran\n")
    line, = result.stderr.splitlines()
    assert line.startswith(f"agent-otel: {tmp_path / 'agent-otel.toml'}: instrumentation.instrumentations: 'opnai' "
                           "is not installed (did you mean 'openai' for 'opnai'?), so the program runs without it; "
                           "the list may name "), line
    installed = line.partition("the list may name ")[2].partition(" (")[0].split(", ")
    # the names the list may hold: not threading nor system_metrics, which their switches decide ("remove it")
    assert "openai" in installed and "threading" not in installed and "system_metrics" not in installed, line
    assert line.endswith(" (threading and system_metrics follow their own switches)"), line


LANGCHAIN_CORE_PROGRAM = """
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage


class Model(GenericFakeChatModel):
    model_name: str = "gpt-4o-mini"  # what the LangChain instrumentation names the chat after


usage = {"input_tokens": 7, "output_tokens": 3, "total_tokens": 10}
print(Model(messages=iter([AIMessage("hi", usage_metadata=usage)])).invoke("hello").content)
"""


def test_the_langchain_instrumentation_loads_for_a_program_that_never_imports_langchain(tmp_path: Path) -> None:
    """A LangGraph or LangChain-core program never imports the ``langchain`` package, which the instrumentation names
    as what it instruments (it patches ``langchain_core``): loaded when that package was imported, it never was, and
    the program's model calls had no spans, tokens or cost under `agent-otel run` (`opentelemetry-instrument` had)."""
    (tmp_path / "app.py").write_text(LANGCHAIN_CORE_PROGRAM)
    result = subprocess.run([str(BIN / "agent-otel"), "run", "--", sys.executable, "app.py"], cwd=tmp_path,
                            env=environment(tmp_path, OTEL_TRACES_EXPORTER="console"), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "hi"
    assert '"name": "chat gpt-4o-mini"' in result.stdout
    assert '"gen_ai.usage.input_tokens": 7' in result.stdout


WRAPPERS_PROGRAM = """
import sys
exec(sys.argv[1])
import wrapt
from langgraph.pregel import Pregel

held, chain = Pregel.__dict__["astream"], []
while held is not None:
    module = type(held).__module__.partition(".")[0]
    chain.append(module if module == "agent_otel" or not isinstance(held, wrapt.BaseObjectProxy) else "wrapt")
    held = getattr(held, "__wrapped__", None)
print(" ".join(chain))
"""


@pytest.mark.parametrize("first", ["import langgraph", "from langgraph.graph import StateGraph",
                                   "import langchain_core"])
def test_the_langchain_instrumentation_wraps_langgraph_whatever_the_program_imports_first(
        tmp_path: Path, first: str) -> None:
    """LangGraph's ``langgraph.pregel`` imports ``langchain_core``, whose import loaded the LangChain instrumentation: a
    program that imported ``langgraph.pregel`` first (``langgraph`` is a namespace package, whose import runs nothing)
    had it patch that module half run, and it skipped ``Pregel.stream``/``astream`` ("not found in the installed
    langgraph", on the program's stderr), which ``opentelemetry-instrument`` wraps. It loads once that import
    completes, and our target on the same method is the outer wrapper, whatever was imported first (it was the inner
    one but for that order)."""
    (tmp_path / "app.py").write_text(WRAPPERS_PROGRAM)
    (tmp_path / "agent-otel.toml").write_text('[[agent]]\ntarget = "langgraph.pregel.main:Pregel.astream"\n'
                                              'name = "graph"\n')
    result = subprocess.run([str(BIN / "agent-otel"), "run", "--", sys.executable, "app.py", first], cwd=tmp_path,
                            env=environment(tmp_path), capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    # ours, the instrumentation's two (its agent graph's and its execution context's), the function
    assert result.stdout.split() == ["agent_otel", "wrapt", "wrapt", "builtins"], result.stdout


def test_an_instrumentation_the_program_turned_on_already_is_left_as_it_is(caplog: pytest.LogCaptureFixture) -> None:
    """One that ran before ours (``opentelemetry-instrument`` around ``agent-otel run``): instrumenting it again
    printed OpenTelemetry's "Attempting to instrument while already instrumented" on the program's stderr."""
    from opentelemetry.instrumentation.distro import DefaultDistro  # type: ignore[attr-defined]
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    from agent_otel._zerocode import instrumentations
    from agent_otel._zerocode.config import Switches

    item = next(item for item in instrumentations.survey(Switches()) if item.name == "requests")
    RequestsInstrumentor().instrument()
    try:
        with caplog.at_level(logging.WARNING):
            assert instrumentations._load(item, DefaultDistro()) is True
        assert RequestsInstrumentor().is_instrumented_by_opentelemetry
    finally:
        RequestsInstrumentor().uninstrument()
    assert [record.getMessage() for record in caplog.records if "instrument" in record.name] == []


def test_the_instrumentor_called_by_the_program_turns_threads_and_system_metrics_on(tmp_path: Path) -> None:
    """Only under ``opentelemetry-instrument`` are they the distro's to turn on: a program calling
    ``AgentOtelInstrumentor().instrument()`` itself had neither, and a thread's spans lost their parent."""
    (tmp_path / "app.py").write_text(textwrap.dedent("""
        import threading
        from opentelemetry import trace
        from opentelemetry.instrumentation.system_metrics import SystemMetricsInstrumentor
        from opentelemetry.instrumentation.threading import ThreadingInstrumentor
        from agent_otel import AgentOtelInstrumentor
        AgentOtelInstrumentor().instrument()
        seen = []
        with trace.get_tracer("app").start_as_current_span("parent") as parent:
            thread = threading.Thread(target=lambda: seen.append(trace.get_current_span() is parent))
            thread.start()
            thread.join()
        print(ThreadingInstrumentor().is_instrumented_by_opentelemetry,
              SystemMetricsInstrumentor().is_instrumented_by_opentelemetry, seen)
    """))
    result = subprocess.run([sys.executable, "app.py"], cwd=tmp_path, env=environment(tmp_path), capture_output=True,
                            text=True, timeout=120)
    assert (result.returncode, result.stdout) == (0, "True True [True]\n"), result.stderr


#: A program's warnings, with no logging configured: Python prints them on stderr (``logging.lastResort``, and
#: ``logging.warning()``'s own ``basicConfig()``).
WARNS = 'import logging\nlogging.warning("disk almost full")\nlogging.getLogger("x").error("boom")\n'


@pytest.mark.parametrize("handler", ["default", "asked for"])
def test_the_logging_instrumentation_leaves_the_programs_warnings_on_stderr_with_no_logs_pipeline(
        tmp_path: Path, handler: str) -> None:
    """``agent-otel run`` turns on every installed instrumentation; the logging one put a handler on the root logger
    that sends records to the global LoggerProvider, of which there is none (agent-otel sets up no logs pipeline): the
    records went nowhere, and, the root logger having a handler, Python printed them nowhere either. It is turned on
    without its handler then, unless its own variable asks for it."""
    (tmp_path / "warns.py").write_text(WARNS)
    extra = {"OTEL_PYTHON_LOG_AUTO_INSTRUMENTATION": "true"} if handler == "asked for" else {}
    plain = subprocess.run([sys.executable, "warns.py"], cwd=tmp_path, env=environment(tmp_path, **extra),
                           capture_output=True, text=True, timeout=60)
    assert plain.stderr == "WARNING:root:disk almost full\nERROR:x:boom\n"
    launched = subprocess.run([str(BIN / "agent-otel"), "run", "--", sys.executable, "warns.py"], cwd=tmp_path,
                              env=environment(tmp_path, **extra), capture_output=True, text=True, timeout=120)
    assert launched.returncode == 0, launched.stderr
    lines = [line for line in launched.stderr.splitlines() if not line.startswith("agent-otel: ")]
    assert lines == (plain.stderr.splitlines() if handler == "default" else [])  # its handler, as asked: its records


#: A program that sets its own logs pipeline up, then the logging instrumentation, as its documentation shows.
OWN_LOGS_PIPELINE = """
import logging
from opentelemetry._logs import set_logger_provider
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.instrumentation.logging import LoggingInstrumentor

exporter = InMemoryLogRecordExporter()
provider = LoggerProvider()
provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
set_logger_provider(provider)
LoggingInstrumentor().instrument()
logging.getLogger("app").warning("exported")
print(len(exporter.get_finished_logs()))
"""


def test_a_program_that_turns_the_logging_instrumentation_on_with_its_own_pipeline_gets_it_as_without_agent_otel(
        tmp_path: Path) -> None:
    """With no logs pipeline at start, ``agent-otel run`` leaves the logging instrumentation off: turned on there (its
    handler off), the program's own ``instrument()`` after its ``LoggerProvider`` did nothing, with the
    instrumentation's "already instrumented" warning, and its records were never exported."""
    (tmp_path / "own.py").write_text(OWN_LOGS_PIPELINE)
    plain = subprocess.run([sys.executable, "own.py"], cwd=tmp_path, env=environment(tmp_path), capture_output=True,
                           text=True, timeout=60)
    launched = subprocess.run([str(BIN / "agent-otel"), "run", "--", sys.executable, "own.py"], cwd=tmp_path,
                              env=environment(tmp_path), capture_output=True, text=True, timeout=120)
    assert (plain.returncode, plain.stdout) == (0, "1\n")
    assert (launched.returncode, launched.stdout) == (0, "1\n")
    # (on Python 3.12, both print that the instrumentation's handler cannot start its thread at exit)
    ours = [line for line in launched.stderr.splitlines() if not line.startswith("agent-otel: ")]
    assert _what_it_says("\n".join(ours)) == _what_it_says(plain.stderr)
