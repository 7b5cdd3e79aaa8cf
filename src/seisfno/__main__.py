"""``python -m seisfno ...``: the ``seisfno`` command where its script is not installed
(e.g. a GPU machine that runs the source tree with ``PYTHONPATH=src``)."""

from .cli import main

if __name__ == "__main__":
    main()
