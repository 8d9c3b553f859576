"""The `pep` command line: a social worker, a designated teacher and the Virtual School drive a PEP from a shell.

Every test gets its own SQLite file through `--database` (whatever PEP_TEST_DATABASE_URL says) and a
system clock frozen on Monday 2 March 2026, 09:00 UTC, so that deadlines computed from a meeting date
are always in the future when the task is completed and `pep timers --now` decides what is late.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import click
import pytest
import yaml
from alembic.script import ScriptDirectory
from click.testing import CliRunner, Result
from sqlalchemy import inspect, select, text, update

from engine import cli_common, history_keys
from engine.cli import main
from engine.clock import SystemClock
from engine.db import make_db, session_factory
from engine.models import Base, Event, Role
from engine.roles import DEFAULT_ROLES_FILE
from engine.schema import alembic_config

from .conftest import BASIC_BUNDLE
from .test_history import insider_rechains
from .test_replay import rechain

MONDAY_MORNING = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SW, DT, EA = "sw@council.test", "dt@council.test", "ea@council.test"
MEETING = {"meeting_date": "2026-03-10", "venue": "Oak Primary"}
PEP_DUE = "2026-03-17 23:59"  # end of the fifth working day after the meeting (London = UTC in March)
LONG_AFTER = "2030-01-01T00:00:00+00:00"


# ---- the runner ------------------------------------------------------------------------------


def _runner() -> CliRunner:
    """A runner that keeps stderr apart from stdout (the default from click 8.2 on)."""
    try:
        return CliRunner(mix_stderr=False)  # click < 8.2
    except TypeError:
        return CliRunner()


@pytest.fixture(autouse=True)
def monday_morning(monkeypatch):
    """Freeze the clock the CLI's engine runs on; put back the log level `pep` sets."""
    monkeypatch.setattr(SystemClock, "now", lambda self: MONDAY_MORNING)
    engine_log = logging.getLogger("engine")
    level = engine_log.level
    yield
    engine_log.setLevel(level)


@pytest.fixture
def database_url(tmp_path):
    return f"sqlite:///{tmp_path}/pep.sqlite"


@pytest.fixture
def pep(database_url, monkeypatch):
    """`pep(*args)` runs `pep --database <this test's SQLite file> *args` and returns the click Result."""
    opened = []

    def make_db(url=None, **kwargs):
        db = real_make_db(url, **kwargs)
        opened.append(db)
        return db

    real_make_db = cli_common.make_db
    monkeypatch.setattr(cli_common, "make_db", make_db)
    runner = _runner()

    def pep(*args: str) -> Result:
        return runner.invoke(main, ["--database", database_url, *args], prog_name="pep")

    yield pep
    for db in opened:  # what the end of a real `pep` process does
        db.dispose()


def ok(result: Result) -> str:
    """The command succeeded; return what it printed."""
    assert result.exit_code == 0, (
        f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}\n{result.exception!r}"
    )
    return result.stdout


def refused(result: Result, exit_code: int = 1) -> list[str]:
    """The command failed cleanly: the exit code, no traceback, nothing on stdout. Return the stderr lines."""
    assert result.exit_code == exit_code, (
        f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}\n{result.exception!r}"
    )
    assert isinstance(result.exception, SystemExit), f"the command crashed: {result.exception!r}"
    assert "Traceback" not in result.output
    assert result.stdout == "", f"a refused command printed to stdout: {result.stdout}"
    return [line for line in result.stderr.splitlines() if line.strip()]


def one_error(result: Result) -> str:
    """An engine refusal: exactly one `error: ...` line on stderr, exit status 1."""
    lines = refused(result)
    assert len(lines) == 1 and lines[0].startswith("error: "), f"expected one error line, got: {lines}"
    return lines[0]


def usage_error(result: Result) -> str:
    """A bad option value: click's usage message with one `Error: ...` line, exit status 2."""
    errors = [line for line in refused(result, exit_code=2) if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


@dataclass
class TaskLine:
    id: str
    child: str
    name: str
    who: str
    due: str


TASK_LINE = re.compile(r"^(?P<id>\S+)  (?P<child>\S+)  (?P<name>.+?)  \[(?P<who>[^\]]+)\]  due (?P<due>.+)$")


def task_lines(output: str) -> list[TaskLine]:
    return [TaskLine(**m.groupdict()) for m in map(TASK_LINE.match, output.splitlines()) if m]


def task(output: str, name: str) -> TaskLine:
    """The one listed task called `name`."""
    found = [t for t in task_lines(output) if t.name == name]
    assert len(found) == 1, f"expected one {name!r} in:\n{output}"
    return found[0]


# ---- a council, a child, the processes -------------------------------------------------------


@pytest.fixture
def council(pep):
    """An initialised database with a social worker, a designated teacher, a VS Education Adviser, and a child."""
    ok(pep("init"))
    ok(pep("users", "add", SW, "--name", "Sam Social-Worker"))
    ok(pep("users", "add", DT, "--name", "Dana Teacher", "--org", "Oak Primary"))
    ok(pep("users", "add", EA, "--name", "Erin Adviser", "--role", "VS Education Adviser"))
    ok(pep("children", "add", "C001", "--name", "Alex Example", "--dob", "2014-05-01", "--school", "Oak Primary"))
    ok(pep("children", "team", "C001", f"Social Worker={SW}", f"Designated Teacher={DT}"))
    return pep


@pytest.fixture
def deployed(council):
    ok(council("deploy", str(BASIC_BUNDLE), "--as", "owner@council.test"))
    return council


@pytest.fixture
def review(deployed):
    """A termly review started for C001; returns the id of the social worker's "Arrange the PEP meeting"."""
    ok(deployed("start", "test_review", "--child", "C001", "--as", SW))
    return task(ok(deployed("tasks", "--user", SW)), "Arrange the PEP meeting").id


# ---- init ------------------------------------------------------------------------------------


def test_init_creates_the_schema_and_seeds_the_roles_and_a_second_run_is_harmless(pep, database_url):
    seeded = yaml.safe_load(DEFAULT_ROLES_FILE.read_text())["roles"]

    first = ok(pep("init"))
    assert first == f"database ready at {database_url} ({len(seeded)} roles added)\n"
    assert ok(pep("init")) == f"database ready at {database_url} (0 roles added)\n"

    db = cli_common.make_db(database_url)
    try:
        assert set(inspect(db).get_table_names()) == set(Base.metadata.tables) | {"alembic_version"}
        with db.connect() as conn:
            roles = conn.execute(select(Role.key, Role.label, Role.pooled)).all()
            head = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all()
    finally:
        db.dispose()
    assert sorted(key for key, _label, _pooled in roles) == sorted(entry["key"] for entry in seeded)
    assert ("vs_education_adviser", "VS Education Adviser", True) in roles
    assert head == [ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()]

    # the roles are usable after the second run
    assert ok(pep("users", "add", EA, "--name", "Erin Adviser", "--role", "Education Adviser")) == f"added {EA}\n"


def test_the_quality_rows_are_checked_against_the_histories_and_rebuilt(pep):
    ok(pep("init"))
    assert ok(pep("quality-rebuild", "--check")) == "the quality rows reconcile with the histories\n"
    assert ok(pep("quality-rebuild")) == "quality rows rebuilt from the histories: 0 rows\n"


# ---- a whole round -------------------------------------------------------------------------


def test_a_social_worker_runs_a_termly_review_from_the_command_line(pep):
    ok(pep("init"))
    assert ok(pep("users", "add", SW, "--name", "Sam Social-Worker")) == f"added {SW}\n"
    assert ok(pep("users", "add", DT, "--name", "Dana Teacher", "--org", "Oak Primary")) == f"added {DT}\n"
    assert ok(pep("users", "add", EA, "--name", "Erin Adviser", "--role", "VS Education Adviser")) == f"added {EA}\n"
    assert (
        ok(pep("children", "add", "C001", "--name", "Alex Example", "--dob", "2014-05-01", "--school", "Oak Primary"))
        == "added child C001\n"
    )
    assert (
        ok(pep("children", "team", "C001", f"Social Worker={SW}", f"Designated Teacher={DT}"))
        == "case team of C001 updated (2 change(s), 0 open task(s) moved)\n"
    )

    first = ok(pep("deploy", str(BASIC_BUNDLE), "--as", "owner@council.test", "--note", "first cut"))
    assert re.fullmatch(r"deployed version 1 \([0-9a-f]{12}\): .*\n", first), first
    assert "test_review" in first
    again = ok(pep("deploy", str(BASIC_BUNDLE)))
    assert again == first.replace("deployed version 1", "unchanged, already version 1")

    started = ok(pep("start", "test_review", "--child", "C001", "--as", SW))
    assert started.startswith("started instance 1 of test_review for C001\n")
    assert task(started, "Arrange the PEP meeting").who == SW

    arrange = task(ok(pep("tasks", "--user", SW)), "Arrange the PEP meeting")
    assert (arrange.child, arrange.who, arrange.due) == ("C001", SW, "-")
    assert ok(pep("tasks", "--user", DT)) == "no open tasks\n"

    completed = ok(pep("complete", arrange.id, "--as", SW, "--data", json.dumps(MEETING)))
    assert completed.startswith("completed; instance 1 is running\n")
    assert ok(pep("tasks", "--user", SW)) == "no open tasks\n"

    complete_pep = task(ok(pep("tasks", "--user", DT)), "Complete the PEP")
    assert (complete_pep.child, complete_pep.who, complete_pep.due) == ("C001", DT, PEP_DUE)
    assert task_lines(ok(pep("tasks", "--child", "C001"))) == [complete_pep]
    assert ok(pep("tasks", "--user", EA)) == "no open tasks\n"

    team_changes, history = ok(pep("history", "C001")).splitlines()[:2], ok(pep("history", "C001")).splitlines()[2:]
    assert [line.split()[3:5] for line in team_changes] == [["case_team_changed", "cli"]] * 2  # who set the team
    kinds = [line.split()[3] for line in history]
    assert kinds == ["instance_started", "task_ready", "task_completed", "task_ready"], history
    assert history[0].startswith("#3    2026-03-02 09:00  instance_started")
    assert history[2].split()[4:] == [SW, "Arrange", "the", "PEP", "meeting"]
    assert history[3].endswith("Complete the PEP")

    assert (
        ok(pep("history", "C001", "--verify")) == f"history of C001 verified: {len(history) + 2} events, chain intact\n"
    )


def test_verify_re_executes_every_childs_history_and_fails_on_a_forged_answer(review, deployed, database_url):
    pep = deployed
    ok(pep("complete", review, "--as", SW, "--data", json.dumps(MEETING)))
    verified = ok(pep("verify")).splitlines()
    assert verified[0] == "C001: ok, 6 events, 2 steps re-executed"  # the case team set, then the review
    assert verified[-1] == "1 child verified: every step re-executed to the stored state, every chain intact"

    db = make_db(database_url)
    with session_factory(db).begin() as s:  # a forger with the key changes the meeting date and re-signs the chain
        event = s.scalar(select(Event).where(Event.kind == "task_completed"))
        s.execute(
            update(Event)
            .where(Event.id == event.id)
            .values(data={**event.data, "data": {**MEETING, "meeting_date": "2026-03-12"}})
        )
        rechain(s, "C001")
    db.dispose()
    result = pep("verify")
    assert result.exit_code == 1
    *failure, warning = result.stderr.splitlines()
    assert warning.startswith("warning: no checkpoints at ")  # this test checkpoints nothing
    assert failure == [
        "C001: FAILED",
        "  event #5 (task_completed Arrange the PEP meeting, instance 1): re-executing it does not give the state that was stored",
        "  instance 1: its stored state is not the state its history leads to",
        "error: 1 of 1 child failed verification",
    ]
    assert one_error(pep("verify", "C404")) == "error: no child C404"


# ---- keyed history and checkpoints -----------------------------------------------------------


def insider(database_url, change) -> None:
    """Someone with the database but neither the history key nor the checkpoint file changes it."""
    db = make_db(database_url)
    try:
        with session_factory(db).begin() as s:
            change(s)
    finally:
        db.dispose()


def test_pep_checkpoint_then_verify_catch_an_insider_who_rechains_a_history_without_the_key(
    review, deployed, database_url, checkpoint_file
):
    pep = deployed
    ok(pep("complete", review, "--as", SW, "--data", json.dumps(MEETING)))
    assert (
        ok(pep("checkpoint"))
        == f"1 child checkpointed, 0 unchanged since their last checkpoint, in {checkpoint_file}\n"
    )
    assert (
        ok(pep("checkpoint"))
        == f"0 children checkpointed, 1 unchanged since their last checkpoint, in {checkpoint_file}\n"
    )
    assert (
        ok(pep("history", "C001", "--verify"))
        == "history of C001 verified: 6 events, chain intact, as its checkpoint recorded\n"
    )
    assert ok(pep("verify")).splitlines()[0] == "C001: ok, 6 events, 2 steps re-executed"

    def the_social_worker_did_not_arrange_it(s):
        s.execute(update(Event).where(Event.kind == "task_completed").values(actor="someone.else@council.test"))
        insider_rechains(s, as_old_history=True)

    insider(database_url, the_social_worker_did_not_arrange_it)
    lines = refused(pep("history", "C001", "--verify"))
    assert lines[0] == "error: history of C001 FAILED verification:"
    assert (
        "  event #1 (id 1, case_team_changed): not signed with a history key, and no checkpoint vouches for it as "
        "written before the history was keyed: written or rewritten without the key" in lines
    )
    assert (
        lines[-1] == "  event #6 is not the event the checkpoint of 2026-03-02T09:00:00+00:00 (line 1) recorded: "
        "the history up to it was rewritten"
    )
    result = pep("verify")
    assert result.exit_code == 1 and result.stderr.splitlines()[-1] == "error: 1 of 1 child failed verification"
    refusing = pep("checkpoint", "--file", str(checkpoint_file))  # a history that does not verify is not signed
    assert refusing.exit_code == 1 and refusing.stdout.startswith("0 children checkpointed, 0 unchanged")
    assert refusing.stderr.splitlines()[0] == "C001: FAILED verification, not checkpointed"
    assert len(checkpoint_file.read_text().splitlines()) == 1


def test_a_child_deleted_with_their_whole_history_is_named_by_pep_verify(review, deployed, database_url):
    pep = deployed
    ok(pep("checkpoint"))

    def erase_the_child(s):
        for table in ("event", "open_task", "notification", "instance", "case_team_member"):
            s.execute(text(f"DELETE FROM {table} WHERE child_id = 'C001'"))
        s.execute(text("DELETE FROM child WHERE id = 'C001'"))

    insider(database_url, erase_the_child)
    result = pep("verify")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "C001: FAILED",
        "  no child C001, but the checkpoint of 2026-03-02T09:00:00+00:00 (line 1) recorded #4 events of their history: "
        "the child and their history were deleted",
        "error: 1 of 1 child failed verification",
    ]
    assert refused(pep("history", "C001", "--verify"))[0] == "error: history of C001 FAILED verification:"
    checkpointed = pep("checkpoint")
    assert checkpointed.exit_code == 1
    assert checkpointed.stderr == "C001: checkpointed before, but not in the database: their history was deleted\n"


def test_verifying_against_a_checkpoint_file_that_is_not_there_is_refused(review, deployed, tmp_path):
    assert (
        one_error(deployed("verify", "--checkpoints", str(tmp_path / "elsewhere.jsonl")))
        == f"error: no checkpoint file at {tmp_path / 'elsewhere.jsonl'}"
    )


def test_the_history_key_is_shown_by_id_and_rotated_in_its_file(pep, monkeypatch, tmp_path):
    monkeypatch.delenv("PEP_HISTORY_KEY")
    key_file = tmp_path / "history_key"
    monkeypatch.setenv("PEP_HISTORY_KEY_FILE", str(key_file))
    assert one_error(pep("history-key", "show")).startswith(f"error: no history key (no key file at {key_file})")
    first = history_keys.signing_key()
    assert ok(pep("history-key", "show")) == (
        f"history keys from {key_file}\n  {first.id}  signs new events and checkpoints\n"
    )
    rotated = ok(pep("history-key", "rotate"))
    second = history_keys.signing_key()
    assert rotated.startswith(f"new history key {second.id} in {key_file}: it signs from now on") and second != first
    assert ok(pep("history-key", "show")).splitlines()[1:] == [
        f"  {second.id}  signs new events and checkpoints",
        f"  {first.id}  verifies what it signed",
    ]
    assert secrets_in(key_file) == 2 and first.id not in key_file.read_text()


def secrets_in(path) -> int:
    return len(path.read_text().split())


def test_keys_given_in_the_environment_are_rotated_by_whoever_sets_them(pep):
    assert one_error(pep("history-key", "rotate")).startswith("error: the history keys come from PEP_HISTORY_KEY")


def test_an_instance_shows_its_status_and_next_timer(review, deployed):
    ok(deployed("complete", review, "--as", SW, "--data", json.dumps(MEETING)))
    shown = json.loads(ok(deployed("show", "1")))
    assert shown["child"] == "C001" and shown["process"] == "test_review"
    assert shown["status"] == "running" and shown["deployment_version"] == 1
    assert shown["next_timer_at"] is not None and shown["next_timer_at"] < "2026-03-17T23:59:59+00:00"
    assert "meeting_rescheduled" in shown["waiting_messages"]


# ---- timers ----------------------------------------------------------------------------------


def test_a_late_pep_goes_to_the_education_advisers_pool(review, deployed):
    pep = deployed
    ok(pep("complete", review, "--as", SW, "--data", json.dumps(MEETING)))
    assert ok(pep("timers")) == "0 timer(s) fired in 0 instance(s); 0 incident(s)\n", "nothing is due on Monday"

    # the reminder two working days before the deadline, and the deadline itself
    assert ok(pep("timers", "--now", LONG_AFTER)) == "2 timer(s) fired in 1 instance(s); 0 incident(s)\n"

    chase = task(ok(pep("tasks", "--user", EA)), "Chase the late PEP")
    assert (chase.child, chase.who) == ("C001", "pool: VS Education Adviser")
    assert ok(pep("tasks", "--user", DT)) == "no open tasks\n", "the late PEP is taken from the school"
    assert ok(pep("tasks", "--user", SW)) == "no open tasks\n"

    assert ok(pep("claim", chase.id, "--as", EA)) == "claimed Chase the late PEP\n"
    assert task(ok(pep("tasks", "--user", EA)), "Chase the late PEP").who == EA

    assert ok(pep("timers", "--now", LONG_AFTER)) == "0 timer(s) fired in 0 instance(s); 0 incident(s)\n"
    history = ok(pep("history", "C001"))
    assert "timer_fired" in history and "Chase the late PEP" in history
    assert "chain intact" in ok(pep("history", "C001", "--verify"))


# ---- refusals --------------------------------------------------------------------------------


def test_completing_a_task_without_its_role_is_refused(review, deployed):
    error = one_error(deployed("complete", review, "--as", DT, "--data", json.dumps(MEETING)))
    assert error == f"error: {DT} does not hold the role Social Worker for child C001"
    assert task(ok(deployed("tasks", "--user", SW)), "Arrange the PEP meeting").id == review


def test_completing_as_nobody_we_know_is_refused(review, deployed):
    assert (
        one_error(deployed("complete", review, "--as", "stranger@elsewhere.test", "--data", json.dumps(MEETING)))
        == "error: no active user stranger@elsewhere.test"
    )


def test_form_data_that_is_not_json_is_refused(review, deployed):
    error = usage_error(deployed("complete", review, "--as", SW, "--data", "{venue: Oak Primary}"))
    assert error.startswith("Error: Invalid value for '--data': not valid JSON")
    assert task(ok(deployed("tasks", "--user", SW)), "Arrange the PEP meeting").id == review


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
def test_data_holding_a_number_json_does_not_allow_is_refused(review, deployed, number):
    error = usage_error(deployed("complete", review, "--as", SW, "--data", f'{{"venue": "Oak", "rating": {number}}}'))
    assert error == f"Error: Invalid value for '--data': {number} is not a number JSON allows: enter a number"
    assert usage_error(deployed("start", "test_review", "--child", "C001", "--data", f'{{"n": {number}}}'))


def test_form_data_must_be_a_json_object(review, deployed):
    error = usage_error(deployed("complete", review, "--as", SW, "--data", '["2026-03-10", "Oak Primary"]'))
    assert error == """Error: Invalid value for '--data': must be a JSON object, e.g. {"venue": "Oak Primary"}"""


def test_form_data_missing_a_required_field_lists_the_field(review, deployed):
    lines = refused(deployed("complete", review, "--as", SW, "--data", '{"venue": "Oak Primary"}'))
    assert lines[0] == "error: the form has errors; nothing was saved"
    assert [line.split(":")[0].strip() for line in lines[1:]] == ["meeting_date"], lines
    assert task(ok(deployed("tasks", "--user", SW)), "Arrange the PEP meeting").id == review
    assert ok(deployed("tasks", "--user", DT)) == "no open tasks\n"


def test_starting_a_process_that_was_never_deployed_is_refused(deployed):
    error = one_error(deployed("start", "test_annual_review", "--child", "C001"))
    assert error == 'error: no deployed process "test_annual_review" (run `pep deploy` first)'


def test_starting_a_process_for_an_unknown_child_is_refused(deployed):
    assert one_error(deployed("start", "test_review", "--child", "C999")) == "error: no child C999"
    assert one_error(deployed("history", "C999")) == "error: no child C999"
    assert ok(deployed("tasks")) == "no open tasks\n"


def test_case_team_entries_must_be_role_equals_email(council):
    assert (
        one_error(council("children", "team", "C001", "Social Worker")) == 'error: "Social Worker" should be ROLE=EMAIL'
    )
    error = one_error(council("children", "team", "C001", f"Head Chef={SW}"))
    assert error.startswith('error: unknown role "Head Chef" (known: ') and "Social Worker" in error


BROKEN_REVIEW = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"
                  id="broken_definitions" targetNamespace="http://example.org/pep-test">
  <bpmn:process id="test_review" name="Broken termly review" isExecutable="true">
    <bpmn:laneSet id="lanes">
      <bpmn:lane id="lane_sw" name="Social Worker">
        <bpmn:flowNodeRef>start</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>arrange_meeting</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>set_deadline</bpmn:flowNodeRef>
        <bpmn:flowNodeRef>done</bpmn:flowNodeRef>
      </bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="arrange_meeting" />
    <bpmn:userTask id="arrange_meeting" name="Arrange the PEP meeting">
      <bpmn:extensionElements>
        <spiffworkflow:properties>
          <spiffworkflow:property name="formJsonSchemaFilename" value="arrange_meeting.schema.json" />
        </spiffworkflow:properties>
      </bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming>
      <bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="f2" sourceRef="arrange_meeting" targetRef="set_deadline" />
    <bpmn:scriptTask id="set_deadline" name="Set the PEP deadline">
      <bpmn:incoming>f2</bpmn:incoming>
      <bpmn:outgoing>f3</bpmn:outgoing>
      <bpmn:script>pep_due = end_of_day(working_days(5, meeting_date)</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f3" sourceRef="set_deadline" targetRef="done" />
    <bpmn:endEvent id="done"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>
"""


def test_a_bundle_with_a_broken_diagram_names_the_file_and_element_and_stores_nothing(council, tmp_path):
    pep = council
    bundle = tmp_path / "broken"
    (bundle / "processes").mkdir(parents=True)
    (bundle / "forms").mkdir()
    (bundle / "processes" / "review.bpmn").write_text(BROKEN_REVIEW, encoding="utf-8")
    form = BASIC_BUNDLE / "forms" / "arrange_meeting.schema.json"
    (bundle / "forms" / form.name).write_text(form.read_text(encoding="utf-8"), encoding="utf-8")

    lines = refused(pep("deploy", str(bundle)))
    assert lines[0] == "error: deployment rejected, 1 problem(s); nothing was stored"
    assert len(lines) == 2 and lines[1].startswith("  processes/review.bpmn:"), lines
    assert "[set_deadline]" in lines[1] and "script" in lines[1]

    assert ok(pep("tasks")) == "no open tasks\n"
    assert one_error(pep("start", "test_review", "--child", "C001")).startswith(
        'error: no deployed process "test_review"'
    )
    assert ok(pep("deploy", str(BASIC_BUNDLE))).startswith("deployed version 1 (")


def test_deploying_one_diagram_keeps_the_others_and_only_retire_takes_one_away(deployed, tmp_path):
    pep = deployed
    (tmp_path / "processes").mkdir()
    review = (BASIC_BUNDLE / "processes" / "review.bpmn").read_text(encoding="utf-8")
    (tmp_path / "processes" / "review.bpmn").write_text(
        review.replace('name="Rating?"', 'name="QA rating?"'), encoding="utf-8"
    )

    second = ok(pep("deploy", str(tmp_path), "--note", "Clearer gateway name")).splitlines()
    assert second[0].startswith("deployed version 2 (") and second[0].endswith(
        "test_cycle, test_fragile, test_initial_meeting, test_review, test_views, test_window"
    )
    assert second[1:] == ["  kept from version 1: deadlines.bpmn, views.bpmn and 6 form(s)"]
    assert ok(pep("start", "test_views", "--child", "C001")).startswith("started instance 1 of test_views")

    third = ok(pep("deploy", str(tmp_path), "--retire", "test_views", "--note", "Views move into the review"))
    assert third.splitlines()[1:] == ["  kept from version 2: deadlines.bpmn and 6 form(s)", "  retired: test_views"]
    assert (
        one_error(pep("start", "test_views", "--child", "C001"))
        == 'error: process "test_views" was retired in version 3: it can no longer be started'
    )
    assert ok(pep("show", "1")).count('"status": "running"') == 1  # the PEP already running carries on

    lines = refused(pep("deploy", str(tmp_path), "--retire", "test_review"))
    assert lines[1] == "  processes/review.bpmn [test_review]: is to be retired, but the bundle still holds it"


def test_deploy_warns_of_lanes_that_may_have_nobody_and_deploys_all_the_same(council, tmp_path):
    (tmp_path / "processes").mkdir()
    views = (BASIC_BUNDLE / "processes" / "views.bpmn").read_text(encoding="utf-8")
    (tmp_path / "processes" / "views.bpmn").write_text(views, encoding="utf-8")
    (tmp_path / "forms").mkdir()
    form = (BASIC_BUNDLE / "forms" / "views.schema.json").read_text(encoding="utf-8")
    (tmp_path / "forms" / "views.schema.json").write_text(form, encoding="utf-8")
    result = council("deploy", str(tmp_path))
    assert result.exit_code == 0 and result.stdout.startswith("deployed version 1 (")
    assert result.stderr.splitlines() == [
        'warning: processes/views.bpmn:7 [views_yp]: lane "Young Person" may have nobody: for a child whose case '
        'team names no Young Person, give_views would wait on the VS Administrator\'s "needs a person" list '
        "(give the role a fallback in config/roles.yaml, or the task a fallback property)"
    ]
    assert council("deploy", str(tmp_path)).stderr == ""  # nothing deployed, nothing to warn of


def test_deploying_a_directory_without_diagrams_is_refused(council, tmp_path):
    lines = refused(council("deploy", str(tmp_path)))
    assert lines == [
        "error: deployment rejected, 1 problem(s); nothing was stored",
        f"  {tmp_path}: no processes/*.bpmn found",
    ]


def test_a_message_that_no_instance_waits_for_is_refused(review, deployed):
    # the review waits for the meeting to be arranged; it cannot be rescheduled yet
    error = one_error(
        deployed("message", "meeting_rescheduled", "--child", "C001", "--data", '{"meeting_date": "2026-03-12"}')
    )
    assert error == 'error: no instance of child C001 is waiting for "meeting_rescheduled"'
    assert task(ok(deployed("tasks", "--user", SW)), "Arrange the PEP meeting").id == review


def test_a_message_that_is_waited_for_is_delivered(review, deployed):
    assert ok(deployed("message", "child_leaves_care", "--child", "C001")) == "delivered to instance(s) 1\n"
    assert ok(deployed("tasks")) == "no open tasks\n"
    assert '"status": "completed"' in ok(deployed("show", "1"))


def test_timers_now_needs_a_time_zone(deployed):
    error = usage_error(deployed("timers", "--now", "2030-01-01T00:00:00"))
    assert error == (
        "Error: Invalid value for '--now': '2030-01-01T00:00:00' is not an ISO date-time with a zone, "
        "e.g. 2026-03-10T09:00:00+00:00"
    )


# ---- help ------------------------------------------------------------------------------------


def _command_paths(group: click.Group = main, prefix: tuple[str, ...] = ()):
    for name, command in sorted(group.commands.items()):
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from _command_paths(command, (*prefix, name))


COMMANDS = [((), main), *_command_paths()]


def test_every_command_is_listed():
    paths = {" ".join(path) for path, _command in COMMANDS}
    assert {
        "init",
        "deploy",
        "start",
        "tasks",
        "complete",
        "timers",
        "history",
        "users add",
        "children add",
        "children team",
    } <= paths


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(("pep", *p)) for p, _c in COMMANDS])
def test_help(pep, path, command):
    out = ok(pep(*path, "--help"))
    assert out.startswith(f"Usage: {' '.join(('pep', *path))} ")
    assert command.help, f"`pep {' '.join(path)}` has no help text"
    if isinstance(command, click.Group):
        for name in command.commands:
            assert f"  {name} " in out or f"  {name}\n" in out, f"{name} missing from the help of {path}"


def test_a_command_before_init_says_to_run_init(pep):
    message = one_error(pep("tasks"))
    assert "is not ready" in message and 'run "pep init"' in message


def test_a_child_with_an_impossible_date_of_birth_is_refused_naming_the_option(pep):
    ok(pep("init"))
    assert "--dob" in usage_error(pep("children", "add", "C9", "--name", "Test Child", "--dob", "2014-13-01"))
