"""Pause Python's cyclic garbage collector around hot loops.

Parsing a trace file and sending a replay both allocate millions of short-lived containers that never
form cycles (reference counting frees them). With the collector on, those allocations trigger
collections that walk every live object again and again: a third of a parse's time, or milliseconds
of pause in the middle of a send schedule. Objects alive before the pause are frozen out of later
collections; collection resumes (and catches up) afterwards.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def paused_gc() -> Iterator[None]:
    was_enabled = gc.isenabled()
    if was_enabled:
        gc.collect()
        gc.freeze()
        gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.unfreeze()
            gc.enable()


def disable_gc_for_worker() -> None:
    """Initializer of parse worker processes: they only parse (no cycles), so no collector at all."""
    gc.disable()
