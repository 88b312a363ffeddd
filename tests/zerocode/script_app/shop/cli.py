"""A module run as `python -m shop.cli`."""

import sys


def checkout(items):
    return sum(items)


if __name__ == "__main__":
    print(checkout([int(arg) for arg in sys.argv[1:]]), sys.argv[0].endswith("cli.py"))
