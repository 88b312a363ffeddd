"""legacy-agents --llm-url URL [--job-id ID] [--exit-code N] [--echo-stdin]"""

from __future__ import annotations

import argparse
import sys

from legacy_agents.jobs import Job


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="legacy-agents")
    parser.add_argument("--llm-url", required=True)
    parser.add_argument("--job-id", default="job-1")
    parser.add_argument("--exit-code", type=int, default=0)
    parser.add_argument("--echo-stdin", action="store_true")
    args = parser.parse_args(argv)
    if args.echo_stdin:
        print("stdin:", sys.stdin.readline().strip())
    print("argv:", " ".join(sys.argv[1:]))
    report = Job(args.job_id, "nightly", args.llm_url).run()
    print(f"job {report.job_id}: {report.fixed}/{report.total} fixed; lint: {'; '.join(report.lint)}; "
          f"{report.formatted}; rolled back: {', '.join(report.rolled_back)}")
    print("errors go to stderr", file=sys.stderr)
    return args.exit_code


if __name__ == "__main__":
    sys.exit(main())
