"""The same task run by SpiffWorkflow alone, in memory: deserialize, run, serialize. No database,
no form validation, no projection or history: the engine's floor, measured on the very state the
engine is about to load."""

from __future__ import annotations

import json
import time
from uuid import UUID

from engine import clock
from engine.runtime import Engine


class BareRun:
    """One task's bare SpiffWorkflow cost, split around the simulated professional's thinking."""

    def __init__(self, engine: Engine, definition, state: dict):
        self.engine, self.definition = engine, definition
        self.text = json.dumps(state)  # as it lies in the database
        self.seconds = self.cpu_seconds = 0.0
        self.workflow = None

    def load(self, task_id: str):
        """Deserialize the workflow (timed) and return the task, for the professional to read."""
        spec, subprocess_specs = self.engine.spec(self.definition)
        started, cpu = time.perf_counter(), time.process_time()
        state = json.loads(self.text)
        self.workflow = self.engine.serializer.state_from_dict(state, spec, subprocess_specs, self.engine.script_engine)
        task = self.workflow.get_task_from_id(UUID(task_id))
        self.seconds += time.perf_counter() - started
        self.cpu_seconds += time.process_time() - cpu
        return task

    def run(self, task, answers: dict) -> float:
        """Complete the task with the answers, run to the next wait, serialize (timed)."""
        with clock.using(self.engine.clock):
            started, cpu = time.perf_counter(), time.process_time()
            task.set_data(**answers)
            task.run()
            self.workflow.do_engine_steps()
            json.dumps(self.engine.serializer.state_to_dict(self.workflow))
            self.seconds += time.perf_counter() - started
            self.cpu_seconds += time.process_time() - cpu
        return self.seconds
