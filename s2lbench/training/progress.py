"""A transformers ``Trainer``'s steps on the console's status line instead of its own bar and printed dicts."""

from __future__ import annotations

import logging
from typing import Any

from s2lbench.common import console

log = logging.getLogger(__name__)


def console_trainer(trainer: Any, progress: console.Activity) -> Any:
    """``trainer`` with its printing and bars removed and a callback that reports each step to ``progress``
    (and each logged dict to the log file, at DEBUG). Run ``trainer.train()`` inside
    ``console.showing(progress)``."""
    from transformers import TrainerCallback

    class ConsoleCallback(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            progress.update(state.global_step)
            console.tick()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or not state.is_world_process_zero:
                return
            if "loss" in logs:
                progress.update(loss=float(logs["loss"]))
            log.debug("trainer log at step %d: %s", state.global_step, logs)

    console.hush_trainer(trainer)
    trainer.add_callback(ConsoleCallback())
    return trainer
