"""Starting a council by importing its case system's extract (engine/importer.py, `pep import`): a dry
run says what would be added, changed and left alone; applying it adds children with their case teams,
schools and people, and starts the initial PEP of a child entering care through the diagrams' own
message; importing the same file again changes nothing; bad rows are named by their row number."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from engine import clock as clocks
from engine import importer
from engine.cli import main
from engine.deploy import Bundle, deploy
from engine.models import CaseTeamMember, Child, Event, Instance, School, User
from engine.people import case_team

from .conftest import ROOT

HEADINGS = (
    "Child ID,Name,Date of birth,UPN,School URN,School name,Legal status,Date entered care,"
    "Social worker's e-mail,Designated teacher's e-mail\n"
)
EXTRACT = HEADINGS + (
    "C001,Alex Example,01/05/2014,A123456789012,100001,Oak Primary,C2,2019-09-01,sw@demo.test,dt@demo.test\n"
    "N001,Nova New,2015-02-03,,100001,Oak Primary,V2,2021-01-04,new.worker@council.test,\n"
    "N002,Remy Recent,2012-06-30,B123456789012,100002,Elm Academy,C1,25/02/2026,new.worker@council.test,"
    "other.dt@demo.test\n"
)


@pytest.fixture
def council_with_processes(council, clock):
    with clocks.using(clock), council.begin() as s:
        deploy(s, Bundle.from_dirs(ROOT), actor="owner@demo.test")
    return council


def planned(sessions, engine, text=EXTRACT):
    with sessions() as s:
        return importer.import_file(s, text.encode(), engine.now())


def do_import(sessions, engine, text=EXTRACT):
    with sessions.begin() as s:
        result = importer.import_file(s, text.encode(), engine.now())
        return importer.apply(s, result, engine, "admin@demo.test")


def counts(sessions) -> dict:
    with sessions() as s:
        return {
            table.__name__: s.scalar(select(func.count()).select_from(table))
            for table in (Child, User, School, CaseTeamMember, Event, Instance)
        }


def test_a_dry_run_says_what_would_be_added_changed_and_started_and_changes_nothing(council_with_processes, engine):
    before = counts(council_with_processes)
    result = planned(council_with_processes, engine)

    assert result.errors == []
    assert [(c.row.child_id, c.action) for c in result.children] == [
        ("C001", "change"),
        ("N001", "add"),
        ("N002", "add"),
    ]
    assert result.children[0].changes == ["Unique pupil number", "School's URN", "Legal status", "Date entered care"]
    assert [c.row.child_id for c in result.starts] == ["N002"]  # entered care 4 working days ago, no PEP yet
    assert result.people_added == {"new.worker@council.test": "New Worker"}
    assert result.schools_added == {"100001": "Oak Primary", "100002": "Elm Academy"}
    assert result.not_in_file == 1  # C002: left alone
    assert counts(council_with_processes) == before


def test_applying_adds_children_teams_schools_and_people_and_starts_the_initial_pep(council_with_processes, engine):
    do_import(council_with_processes, engine)

    with council_with_processes() as s:
        nova = s.get(Child, "N001")
        assert (nova.name, nova.school, nova.school_urn, nova.legal_status) == (
            "Nova New",
            "Oak Primary",
            "100001",
            "section_20",
        )
        team = {role: user.email for role, user in case_team(s, "N001").items()}
        assert team == {
            "social_worker": "new.worker@council.test",
            "designated_teacher": "dt@demo.test",
        }  # the school's
        assert [t.user_id for t in s.get(School, "100001").teachers] == [
            s.scalar(select(User.id).where(User.email == "dt@demo.test"))
        ]
        first = s.scalars(select(Event).where(Event.child_id == "N001")).one()
        assert first.kind == "child_imported" and first.actor == "admin@demo.test" and first.data["row"] == 3
        started = s.scalars(select(Instance).where(Instance.child_id == "N002")).all()
        assert [i.definition.process_id for i in started] == ["initial_pep"]
        assert (
            s.scalar(select(Event).where(Event.child_id == "N002", Event.kind == "change_reported")).data["message"]
            == "child_becomes_looked_after"
        )
        alex = s.get(Child, "C001")
        assert (alex.upn, alex.school_urn, alex.legal_status) == ("A123456789012", "100001", "care_order")
        changed = s.scalar(select(Event).where(Event.child_id == "C001", Event.kind == "child_details_changed"))
        assert changed.data["changes"]["upn"] == {"before": None, "after": "A123456789012"}
        assert changed.data["imported"] and changed.data["row"] == 2


def test_importing_the_same_file_again_changes_nothing(council_with_processes, engine):
    do_import(council_with_processes, engine)
    before = counts(council_with_processes)

    again = planned(council_with_processes, engine)
    assert [c.action for c in again.children] == ["same", "same", "same"] and again.starts == []
    assert again.people_added == {} and again.schools_added == {} and again.teachers_added == []
    do_import(council_with_processes, engine)
    assert counts(council_with_processes) == before


def test_bad_rows_are_named_by_their_row_number_in_plain_words_and_nothing_is_imported(council_with_processes, engine):
    bad = HEADINGS + (
        "N001,Nova New,31/02/2015,,100001,,C2,,,\n"
        ",No Id,,,,,,,,\n"
        "N003,Bad Everything,2015-01-01,X1,12,,Adopted by wolves,soon,not-an-email,auditor@demo.test\n"
        "N001,Nova Again,,,,,,,,\n"
    )
    with council_with_processes.begin() as s:
        from engine.people import add_user

        add_user(s, "auditor@demo.test", "Aud Inspector", roles=["Auditor"])
    result = planned(council_with_processes, engine, bad)

    assert result.errors[:2] == [
        "Row 2: the date of birth “31/02/2015” is not a real date",
        "Row 3: the child's id is missing",
    ]
    row4 = [e for e in result.errors if e.startswith("Row 4:")]
    assert len(row4) == 5 and any("UPN “X1”" in e for e in row4) and any("URN “12”" in e for e in row4)
    assert any("legal status “Adopted by wolves” is not one we know" in e for e in row4)
    assert any("“soon” is not a date" in e for e in row4) and any("not-an-email" in e for e in row4)
    assert result.errors[-1] == "Row 5: the child N001 is also on row 2: give each child one row"
    with pytest.raises(importer.ImportRefused), council_with_processes.begin() as s:
        importer.apply(s, result, engine, "admin@demo.test")


def test_an_auditor_is_never_put_in_a_case_team_by_an_import(council_with_processes, engine):
    with council_with_processes.begin() as s:
        from engine.people import add_user

        add_user(s, "auditor@demo.test", "Aud Inspector", roles=["Auditor"])
    result = planned(council_with_processes, engine, HEADINGS + "N009,Ned,,,,,,,auditor@demo.test,\n")
    assert result.errors == [
        "Row 2: auditor@demo.test is an auditor: auditors see a child only through a grant, never in a case team"
    ]


def test_a_file_without_the_columns_it_needs_is_refused_in_words(council_with_processes, engine):
    with pytest.raises(importer.ImportRefused, match="no column for “Child ID”"):
        planned(council_with_processes, engine, "Forename,Surname\nA,B\n")


# ---- pep import ------------------------------------------------------------------------------------


@pytest.fixture
def cli_databases(monkeypatch):
    """The databases `pep` opens in this test, disposed at its end (as the end of a real process does)."""
    from engine import cli_common

    opened, real = [], cli_common.make_db
    monkeypatch.setattr(cli_common, "make_db", lambda *a, **k: opened.append(real(*a, **k)) or opened[-1])
    yield
    for db in opened:
        db.dispose()


def test_pep_import_dry_run_then_apply_then_again(council_with_processes, db, tmp_path, clock, cli_databases):
    path = tmp_path / "extract.csv"
    path.write_text(EXTRACT, encoding="utf-8")
    url = ["--database", db.url.render_as_string(hide_password=False)]
    from click.testing import CliRunner

    runner = CliRunner()
    with clocks.using(clock):
        dry = runner.invoke(main, [*url, "import", str(path), "--dry-run"])
        assert dry.exit_code == 0, dry.output
        assert "dry run, nothing changed: 2 children to add, 1 to change, 0 left alone" in dry.output
        assert "row 2: C001 would change: Unique pupil number" in dry.output
        done = runner.invoke(main, [*url, "import", str(path), "--as", "admin@demo.test"])
        assert done.exit_code == 0, done.output
        assert "imported: 2 children added, 1 changed" in done.output and "1 initial PEPs started" in done.output
        again = runner.invoke(main, [*url, "import", str(path), "--dry-run"])
        assert "0 children to add, 0 to change, 3 left alone" in again.output
        path.write_text(HEADINGS + "Z1,Zed,1/13/2015,,,,,,,\n", encoding="utf-8")
        bad = runner.invoke(main, [*url, "import", str(path)])
    assert bad.exit_code == 1
    assert "Row 2: the date of birth “1/13/2015” is not a real date" in bad.output
    assert "1 problem(s)" in bad.output and "nothing was imported" in bad.output
