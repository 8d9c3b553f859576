"""Deadlines in working days, school days and terms, as PEP diagrams use them."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from engine import CONFIG, calendar
from engine.calendar import (
    EXPRESSION_FUNCTIONS,
    CalendarError,
    academic_year_age,
    add_days,
    age_on,
    at_time,
    end_of_day,
    first_half_of_term_end,
    is_school_day,
    is_working_day,
    load_term_dates,
    next_term_start,
    school_days,
    school_weeks,
    set_term_dates,
    start_of_day,
    term_number,
    term_of,
    working_days,
)
from engine.clock import FrozenClock, using

SHIPPED_TERM_DATES = CONFIG / "term_dates.yaml"

TEST_TERMS = {
    "council": "Test Council",
    "terms": [
        {"name": "Autumn", "start": "2025-09-03", "end": "2025-12-19",
         "half_term_start": "2025-10-27", "half_term_end": "2025-10-31"},
        {"name": "Spring", "start": "2026-01-05", "end": "2026-03-27",
         "half_term_start": "2026-02-16", "half_term_end": "2026-02-20"},
        {"name": "Summer", "start": "2026-04-13", "end": "2026-07-22",
         "half_term_start": "2026-05-25", "half_term_end": "2026-05-29"},
        {"name": "Autumn", "start": "2026-09-03", "end": "2026-12-18",
         "half_term_start": "2026-10-26", "half_term_end": "2026-10-30"},
        {"name": "Spring", "start": date(2027, 1, 4), "end": date(2027, 3, 25),
         "half_term_start": date(2027, 2, 15), "half_term_end": date(2027, 2, 19)},
    ],
    "closures": ["2026-11-13"],  # an INSET day
}  # fmt: skip


@pytest.fixture(autouse=True)
def test_terms():
    set_term_dates(TEST_TERMS)
    yield
    set_term_dates(None)


# --- working days -----------------------------------------------------------------------------


def test_the_next_working_day_after_a_friday_is_monday():
    assert working_days(1, "2026-03-06T10:00") == "2026-03-09T10:00:00+00:00"


def test_counting_from_a_weekend_starts_on_monday():
    saturday = "2026-03-07T10:00"
    assert working_days(1, saturday) == "2026-03-09T10:00:00+00:00"
    assert working_days(0, saturday) == "2026-03-09T10:00:00+00:00"
    assert working_days(2, saturday) == "2026-03-10T10:00:00+00:00"


def test_zero_working_days_from_a_working_day_is_the_start_itself():
    assert working_days(0, "2026-03-10T14:30") == "2026-03-10T14:30:00+00:00"


def test_five_working_days_is_a_calendar_week():
    assert working_days(5, "2026-03-10T09:00") == "2026-03-17T09:00:00+00:00"


def test_easter_2026_bank_holidays_are_not_working_days():
    assert not is_working_day("2026-04-03")  # Good Friday
    assert not is_working_day("2026-04-06")  # Easter Monday
    # Thursday before Easter + 1 working day = the Tuesday after (10:00 BST = 09:00Z).
    assert working_days(1, "2026-04-02T10:00") == "2026-04-07T09:00:00+00:00"


def test_the_late_may_bank_holiday_is_skipped():
    assert working_days(1, "2026-05-22T10:00") == "2026-05-26T09:00:00+00:00"


def test_christmas_2026_with_the_substitute_boxing_day():
    assert not is_working_day("2026-12-25")  # Friday
    assert not is_working_day("2026-12-28")  # Monday: Boxing Day (26th) falls on a Saturday
    assert working_days(1, "2026-12-24T10:00") == "2026-12-29T10:00:00+00:00"
    assert working_days(4, "2026-12-24T10:00") == "2027-01-04T10:00:00+00:00"  # 1 Jan too


def test_three_working_days_before_a_meeting():
    meeting = "2026-04-07T10:00"  # Tuesday after Easter
    assert working_days(-3, meeting) == "2026-03-31T09:00:00+00:00"


def test_counting_back_from_a_sunday_lands_on_friday():
    assert working_days(-1, "2026-03-08T10:00") == "2026-03-06T10:00:00+00:00"


# --- school days ------------------------------------------------------------------------------


def test_half_term_is_not_school_days_but_still_working_days():
    assert is_working_day("2026-10-27")
    assert not is_school_day("2026-10-27")
    assert is_school_day("2026-10-23")


def test_school_days_skip_the_october_half_term():
    assert school_days(1, "2026-10-23T09:00") == "2026-11-02T09:00:00+00:00"


def test_school_days_skip_the_christmas_holiday():
    assert school_days(1, "2026-12-18T09:00") == "2027-01-04T09:00:00+00:00"


def test_school_days_skip_a_closure():
    assert not is_school_day("2026-11-13")
    assert school_days(1, "2026-11-12T09:00") == "2026-11-16T09:00:00+00:00"


def test_counting_from_the_summer_holiday_starts_on_the_first_day_of_term():
    assert school_days(0, "2026-08-10T09:00") == "2026-09-03T08:00:00+00:00"
    assert school_days(1, "2026-08-10T09:00") == "2026-09-03T08:00:00+00:00"


def test_three_school_weeks_before_the_pep_meeting_reach_back_over_half_term():
    meeting = "2026-11-04"
    assert school_weeks(-3, meeting) == school_days(-15, meeting)
    assert school_weeks(-3, meeting) == "2026-10-06T23:00:00+00:00"  # 00:00 BST on Wed 7 Oct


def test_school_days_outside_the_configured_terms_raise_a_clear_error():
    with pytest.raises(CalendarError, match=r"from 2030-01-07: 2030-01-08 is outside the term dates configured"):
        school_days(1, "2030-01-07")
    with pytest.raises(CalendarError, match=r"2030-01-07 is outside the term dates configured in <mapping>"):
        is_school_day("2030-01-07")
    with pytest.raises(CalendarError, match=r"2027-03-26 is outside"):
        school_days(1, "2027-03-25")  # the last configured school day
    assert issubclass(CalendarError, ValueError)


def test_the_error_names_the_config_file(tmp_path):
    path = tmp_path / "terms.yaml"
    path.write_text(
        "council: X\n"
        "terms:\n"
        "  - {name: Autumn, start: 2026-09-03, end: 2026-12-18,"
        " half_term_start: 2026-10-26, half_term_end: 2026-10-30}\n"
    )
    set_term_dates(path)
    with pytest.raises(CalendarError, match="terms.yaml"):
        is_school_day("2027-01-04")


def test_malformed_term_dates_are_rejected():
    autumn = {"name": "Autumn", "start": "2026-09-03", "end": "2026-10-01"}
    half_term_after_the_end = {**autumn, "half_term_start": "2026-10-26", "half_term_end": "2026-10-30"}
    with pytest.raises(CalendarError, match="out of order"):
        set_term_dates({"terms": [half_term_after_the_end]})
    with pytest.raises(CalendarError, match="malformed"):
        set_term_dates({"terms": [autumn]})


# --- terms ------------------------------------------------------------------------------------


def test_first_half_of_term_deadline_is_the_last_school_day_before_half_term():
    assert first_half_of_term_end("2026-09-10") == "2026-10-23T22:59:59+00:00"  # 23:59:59 BST


def test_first_half_of_term_deadline_in_a_holiday_is_the_next_terms():
    assert first_half_of_term_end("2026-08-10") == "2026-10-23T22:59:59+00:00"
    assert first_half_of_term_end("2026-12-24") == "2027-02-12T23:59:59+00:00"  # GMT


def test_term_lookup():
    assert term_of("2026-10-28") == {
        "name": "Autumn",
        "start": "2026-09-03",
        "end": "2026-12-18",
        "half_term_start": "2026-10-26",
        "half_term_end": "2026-10-30",
        "academic_year": "2026-27",
    }
    assert term_of("2026-08-10") is None
    assert term_number("2026-02-02") == 2
    assert term_number("2026-06-01") == 3
    assert term_number("2026-08-10") == 1  # the summer holiday looks ahead to autumn
    assert next_term_start("2026-10-01") == "2027-01-04T00:00:00+00:00"
    assert next_term_start("2026-08-10") == "2026-09-02T23:00:00+00:00"


# --- times, inputs and outputs ----------------------------------------------------------------


def test_results_are_timezone_aware_utc_iso_strings():
    june_ten_am_in_london = "2026-06-10T10:00"
    result = working_days(0, june_ten_am_in_london)
    assert result == "2026-06-10T09:00:00+00:00"
    assert datetime.fromisoformat(result).utcoffset().total_seconds() == 0


def test_aware_datetime_and_date_inputs():
    assert working_days(1, datetime(2026, 6, 12, 9, 0, tzinfo=UTC)) == "2026-06-15T09:00:00+00:00"
    assert working_days(1, "2026-06-12T09:00:00Z") == "2026-06-15T09:00:00+00:00"
    assert working_days(1, date(2026, 3, 6)) == "2026-03-09T00:00:00+00:00"


def test_a_date_only_string_means_midnight_in_london():
    assert working_days(5, "2026-03-10") == "2026-03-17T00:00:00+00:00"
    assert working_days(5, "2026-06-10") == "2026-06-16T23:00:00+00:00"
    assert end_of_day(working_days(5, "2026-06-10")) == "2026-06-17T22:59:59+00:00"


def test_day_boundaries_and_times_of_day():
    assert start_of_day("2026-06-10T15:00") == "2026-06-09T23:00:00+00:00"
    assert end_of_day("2026-01-10T15:00") == "2026-01-10T23:59:59+00:00"
    assert at_time("2026-06-10", "09:00") == "2026-06-10T08:00:00+00:00"
    assert at_time(working_days(2, "2026-03-06"), "09:30") == "2026-03-10T09:30:00+00:00"


def test_calendar_days_keep_the_london_time_across_the_clocks_changing():
    assert add_days(7, "2026-03-25T10:00") == "2026-04-01T09:00:00+00:00"  # BST from 29 March
    assert add_days(-1, "2026-03-10T10:00") == "2026-03-09T10:00:00+00:00"


def test_no_start_means_the_clocks_now():
    friday_afternoon = FrozenClock("2026-03-06T15:00:00+00:00")
    with using(friday_afternoon):
        assert working_days(1) == "2026-03-09T15:00:00+00:00"
        assert EXPRESSION_FUNCTIONS["now"]() == "2026-03-06T15:00:00+00:00"
        assert term_of()["name"] == "Spring"
        friday_afternoon.advance(days=1)
        assert not is_working_day()


def test_invalid_input_is_a_calendar_error():
    with pytest.raises(CalendarError, match="not an ISO date"):
        working_days(1, "next Tuesday")


# --- ages -------------------------------------------------------------------------------------


def test_age_on_a_date():
    assert age_on("2010-06-15", "2026-06-14") == 15
    assert age_on("2010-06-15", "2026-06-15") == 16


def test_academic_year_age_follows_the_31_august_rule():
    october = "2026-10-01"
    assert academic_year_age("2010-08-31", october) == 16  # Year 12: Post-16
    assert academic_year_age("2010-09-01", october) == 15  # Year 11, the youngest of that class
    assert academic_year_age("2010-08-31", "2027-07-01") == 16  # same academic year
    assert academic_year_age("2010-08-31", "2027-09-01") == 17


# --- configuration and the expression environment -----------------------------------------------


def test_the_shipped_term_dates_load_and_cover_2026_27():
    demo = load_term_dates(SHIPPED_TERM_DATES)
    assert demo.council == "Demo Council"
    years = {term.academic_year for term in demo.terms}
    assert {"2024-25", "2025-26", "2026-27", "2027-28"} <= years
    assert [demo.term_number(t) for t in demo.terms if t.academic_year == "2026-27"] == [1, 2, 3]
    set_term_dates(SHIPPED_TERM_DATES)
    assert term_of("2027-05-10")["academic_year"] == "2026-27"
    assert school_days(1, "2026-12-18T09:00") == "2027-01-04T09:00:00+00:00"


def test_the_default_term_dates_can_come_from_the_environment(monkeypatch, tmp_path):
    path = tmp_path / "council.yaml"
    path.write_text(SHIPPED_TERM_DATES.read_text().replace("Demo Council", "Env Council"))
    monkeypatch.setenv("PEP_TERM_DATES", str(path))
    set_term_dates(None)
    assert calendar.default_calendar().council == "Env Council"


def test_today_and_long_dates_are_read_in_london(clock):
    clock.set("2026-06-30T23:30:00+00:00")  # already 1 July in London (BST)
    with using(clock):
        assert calendar.today() == "2026-07-01"
    assert calendar.long_date("2026-03-09") == calendar.long_date("2026-03-09T12:00:00+00:00") == "9 March 2026"


def test_expression_functions_return_json_friendly_values():
    expected = {
        "working_days", "school_days", "school_weeks", "add_days", "end_of_day", "start_of_day",
        "at_time", "term_of", "first_half_of_term_end", "next_term_start", "term_number",
        "is_school_day", "is_working_day", "age_on", "academic_year_age", "now", "today", "long_date",
    }  # fmt: skip
    assert set(EXPRESSION_FUNCTIONS) == expected
    when = "2026-10-01T10:00"
    values = [
        EXPRESSION_FUNCTIONS["working_days"](3, when),
        EXPRESSION_FUNCTIONS["school_weeks"](2, when),
        EXPRESSION_FUNCTIONS["term_of"](when),
        EXPRESSION_FUNCTIONS["term_number"](when),
        EXPRESSION_FUNCTIONS["is_school_day"](when),
        EXPRESSION_FUNCTIONS["academic_year_age"]("2012-05-05", when),
    ]
    assert json.loads(json.dumps(values)) == values
