"""The forkserver the encoder processes fork from.

It imports pyarrow and the encoding code once; each encoder then starts in
milliseconds (a spawned one re-runs the ``ticklake`` script's imports, about
0.8 CPU-s). ``ticklake sink`` starts it first thing, so it imports while the
sink process imports the rest. This module imports nothing heavy.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing import forkserver
from multiprocessing.context import BaseContext

# The entry point (a worker re-runs the parent's main script, which imports
# worker.cli) and the encoding code.
PRELOAD = ("worker.cli", "worker.sink.batch")


def context() -> BaseContext:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(PRELOAD))
    return ctx


def start() -> None:
    """Launch the forkserver now (it does not wait for its imports)."""
    context()
    forkserver.ensure_running()
