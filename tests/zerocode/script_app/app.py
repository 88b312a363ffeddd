"""A program whose agent, tool and entry point live in the script itself (run as `python app.py`)."""

import sys


class Agent:
    def run(self, task):
        return {"task": task, "success": lookup(task) > 0}


def lookup(task):
    if task == "fail":
        raise LookupError(f"no answer for {task!r}")
    return len(task)


"""A bare string after the definitions: not the module's docstring."""


def main(argv):
    results = [Agent().run(task) for task in argv]
    print(__name__, __doc__, sys.argv, sorted(name for name in globals() if not name.startswith("__")))
    print(results)
    return 3 if "exit" in argv else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
