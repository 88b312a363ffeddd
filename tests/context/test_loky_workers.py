"""joblib's loky workers (``Parallel``'s default backend) under ``agent-otel run``: each task runs in the job and
trace it was submitted in. Real joblib, real loky worker processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.environment import CLEAN_ENV

AGENT_OTEL = str(Path(sys.executable).parent / "agent-otel")

HELPER = """
import agent_otel


@agent_otel.tool("work")
def work(x):
    return agent_otel.current_job_id(), x * 2
"""


def _run(project: Path, program: str) -> subprocess.CompletedProcess[str]:
    (project / "helper.py").write_text(textwrap.dedent(HELPER))
    (project / "app.py").write_text(textwrap.dedent(program))
    env = {**CLEAN_ENV, "XDG_CACHE_HOME": str(project / "cache"), "OTEL_METRICS_EXPORTER": "none",
           "OTEL_LOGS_EXPORTER": "none", "OTEL_TRACES_EXPORTER": "none"}
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
        from joblib.externals.loky import ProcessPoolExecutor
        from helper import work

        def batch():
            return sorted({job for job, _ in Parallel(n_jobs=2)(delayed(work)(i) for i in range(4))}, key=str)

        with agent_otel.job("job-a"):
            print(batch())
        with agent_otel.job("job-b"):
            print(batch())
        print(batch())
        with ProcessPoolExecutor(max_workers=1) as executor:  # loky's own: its submit() takes fn by keyword too
            executor.submit(work, 0).result()  # (its worker starts here, in no job)
            with agent_otel.job("job-c"):
                print(executor.submit(fn=work, x=1).result()[0])
    """)
    assert result.stdout == "['job-a']\n['job-b']\n[None]\njob-c\n"
