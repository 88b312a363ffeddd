"""joblib's loky workers (``Parallel``'s default backend) under ``agent-otel run``: each task runs in the job and
trace it was submitted in, and what a worker recorded is exported as its tasks end, before joblib kills it.

Real joblib, real loky worker processes; telemetry read off a real OTLP/HTTP receiver."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.environment import CLEAN_ENV
from tests.support.otlp_receiver import OtlpHttpReceiver
from tests.support.polling import wait_until

AGENT_OTEL = str(Path(sys.executable).parent / "agent-otel")

HELPER = """
import agent_otel


@agent_otel.tool("work")
def work(x):
    return agent_otel.current_job_id(), x * 2
"""


def _run(project: Path, program: str, receiver: OtlpHttpReceiver | None = None) -> subprocess.CompletedProcess[str]:
    (project / "helper.py").write_text(textwrap.dedent(HELPER))
    (project / "app.py").write_text(textwrap.dedent(program))
    env = {**CLEAN_ENV, "XDG_CACHE_HOME": str(project / "cache"), "OTEL_METRICS_EXPORTER": "none",
           "OTEL_LOGS_EXPORTER": "none", "OTEL_TRACES_EXPORTER": "none"}
    if receiver is not None:
        env.update(OTEL_TRACES_EXPORTER="otlp", OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                   OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf")
    result = subprocess.run([AGENT_OTEL, "run", "--", sys.executable, "app.py"], cwd=project, env=env,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    return result


def test_a_reused_worker_runs_each_task_in_the_job_it_was_submitted_in(tmp_path: Path) -> None:
    """The reusable executor's workers start in the first job that uses them (its trace context and baggage in their
    environment) and ran every later task in it: job-b's and a job-less batch's calls carried job-a's id and trace
    (probe p49g). Each task now carries its own, as ``ProcessPoolExecutor.submit``'s do."""
    result = _run(tmp_path, """
        import agent_otel
        from joblib import Parallel, delayed
        from helper import work

        def batch():
            return sorted({job for job, _ in Parallel(n_jobs=2)(delayed(work)(i) for i in range(4))}, key=str)

        with agent_otel.job("job-a"):
            print(batch())
        with agent_otel.job("job-b"):
            print(batch())
        print(batch())
    """)
    assert result.stdout == "['job-a']\n['job-b']\n[None]\n"


def test_what_workers_recorded_is_exported_before_joblib_kills_them(tmp_path: Path) -> None:
    """A task that raises makes joblib kill its workers (SIGKILL: no exit flush runs): every span they held for the
    next periodic export was lost, the six tool calls here (probe p49g). A loky worker exports what it recorded as soon
    as no call of agent-otel's runs in it, as a Ray worker does."""
    with OtlpHttpReceiver() as receiver:
        result = _run(tmp_path, """
            from joblib import Parallel, delayed
            from helper import work

            with Parallel(n_jobs=2) as parallel:
                print(len(parallel(delayed(work)(i) for i in range(6))))
                try:
                    parallel(delayed(work)(x) for x in [None])
                except TypeError:
                    print("raised")
        """, receiver)
        assert result.stdout == "6\nraised\n"
        # the six that returned (the failing one's own export races joblib's kill)
        wait_until(lambda: sum(span.name == "execute_tool work" for span in receiver.spans()) >= 6,
                   "the workers' six tool calls")
