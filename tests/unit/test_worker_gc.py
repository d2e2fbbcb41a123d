"""A started worker collects cycles less often and never looks at its start-up objects again."""

from __future__ import annotations

import gc

from extsched.runtime import LONG_RUNNING_GC_THRESHOLD, tune_gc_after_start


def test_it_freezes_start_up_objects_and_raises_the_young_generation() -> None:
    before = gc.get_threshold()
    try:
        tune_gc_after_start()
        assert gc.get_threshold() == (LONG_RUNNING_GC_THRESHOLD, before[1], before[2])
        assert gc.get_freeze_count() > 0
        cycle: list[object] = []
        cycle.append(cycle)  # cycles are still collected
        del cycle
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
