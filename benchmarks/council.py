"""A synthetic council: Virtual School staff, social workers, schools with their designated teachers,
and children of every age and PEP variant with their case teams. All names and data are invented."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from engine import groupkeys
from engine.models import CaseTeamMember, Child, User, UserRole
from engine.roles import seed_roles

# Share of children in care by age band (DfE "Children looked after in England", 2024, rounded).
AGE_BANDS = [((0, 1), 0.05), ((1, 5), 0.14), ((5, 10), 0.17), ((10, 16), 0.38), ((16, 18), 0.26)]
# How the council's schools run their termly PEPs: each a diagram (pep_cycle.bpmn routes post-16s).
VARIANTS = [
    ("termly_review_due", 0.45),
    ("ppg_review_due", 0.2),
    ("all_ages_review_due", 0.2),
    ("word_form_review_due", 0.15),
]
ENTERS_CARE_IN_YEAR = 0.12
NO_SCHOOL_PLACE = 0.03
CHILDREN_PER = {"school": 6, "social_worker": 15, "ea": 60, "pa": 25, "hv": 40, "iro": 50, "carer": 2}
FIRST = [
    "Alex",
    "Blair",
    "Casey",
    "Drew",
    "Emery",
    "Frankie",
    "Gray",
    "Harper",
    "Indy",
    "Jules",
    "Kit",
    "Lee",
    "Morgan",
    "Noor",
    "Oakley",
    "Parker",
    "Quinn",
    "Reese",
    "Sky",
    "Tate",
]
LAST = ["Example", "Sample", "Test", "Placeholder", "Fictional", "Madeup", "Invented", "Unreal", "Dummy", "Mock"]


@dataclass
class SyntheticChild:
    id: str
    name: str
    date_of_birth: date
    school: str | None
    variant: str
    enters_care: date | None  # None: already in care when the year starts


@dataclass
class Council:
    children: list[SyntheticChild] = field(default_factory=list)
    emails: dict[str, list[str]] = field(default_factory=dict)  # kind of person → their emails

    def first(self, kind: str) -> str:
        return self.emails[kind][0]


def build(session: Session, size: int, year_start: date, rng: random.Random, prefix: str = "C") -> Council:
    """Insert a council of `size` children (and its staff) in bulk; return what was made."""
    seed_roles(session)
    council = Council()
    users, roles, children, teams = [], [], [], []

    def people(kind: str, count: int, organisation: str, council_roles=()) -> list[str]:
        emails = []
        for n in range(1, count + 1):
            email = f"{kind}{n}@{prefix.lower()}.bench.test"
            users.append(
                {
                    "email": email,
                    "name": f"{kind.upper()} {n} {rng.choice(LAST)}",
                    "organisation": organisation.format(n=n),
                    "active": True,
                }
            )
            roles.extend((email, role) for role in council_roles)
            emails.append(email)
        council.emails[kind] = emails
        return emails

    def count(kind: str) -> int:
        return max(1, -(-size // CHILDREN_PER[kind]))

    people("ea", count("ea"), "Virtual School", ["vs_education_adviser"])
    people("vsh", 1, "Virtual School", ["vs_head"])
    people("admin", max(1, size // 300), "Virtual School", ["vs_administrator"])
    people("bso", max(1, size // 300), "Business Support", ["business_support_officer"])
    dts = people("dt", count("school"), "School {n}")
    sws = people("sw", count("social_worker"), "Children's Services")
    pas = people("pa", count("pa"), "Leaving Care Team")
    hvs = people("hv", count("hv"), "Health Visiting")
    iros = people("iro", count("iro"), "Independent Reviewing")
    carers = people("carer", count("carer"), "Foster carer")
    young = []
    for n in range(1, size + 1):
        child_id = f"{prefix}{n:06d}"
        ((low, high),) = rng.choices([band for band, _ in AGE_BANDS], [share for _, share in AGE_BANDS])
        born = year_start - timedelta(days=int(rng.uniform(low, high) * 365.25))
        school_index = rng.randrange(len(dts))
        school = (
            None
            if born > year_start - timedelta(days=3 * 365) or rng.random() < NO_SCHOOL_PLACE
            else f"School {school_index + 1}"
        )
        variant = rng.choices([v for v, _ in VARIANTS], [s for _, s in VARIANTS])[0]
        enters = year_start + timedelta(days=rng.randint(7, 280)) if rng.random() < ENTERS_CARE_IN_YEAR else None
        child = SyntheticChild(child_id, f"{rng.choice(FIRST)} {rng.choice(LAST)}", born, school, variant, enters)
        council.children.append(child)
        children.append(
            {
                "id": child_id,
                "name": child.name,
                "date_of_birth": born,
                "school": school,
                "created_at": _midnight(year_start),
                "history_seq": 0,
                "history_head": "",
                "in_care": enters is None,
            }
        )  # one entering care later is not in care yet
        team = {
            "social_worker": rng.choice(sws),
            "carer": carers[(n - 1) // CHILDREN_PER["carer"]],
            "iro": rng.choice(iros),
        }
        if school:
            team["designated_teacher"] = dts[school_index]
        if born <= year_start - timedelta(days=int(15.5 * 365.25)):
            team["personal_adviser"] = rng.choice(pas)
        if born > year_start - timedelta(days=5 * 365):
            team["health_visitor"] = rng.choice(hvs)
        if born <= year_start - timedelta(days=11 * 365):
            email = f"yp{n}@{prefix.lower()}.bench.test"
            young.append({"email": email, "name": f"Young person {n}", "organisation": None, "active": True})
            team["young_person"] = email
        teams.append((child_id, team))
    council.emails["yp"] = [u["email"] for u in young]
    users.extend(young)
    session.execute(insert(User), users)
    ids = dict(session.execute(select(User.email, User.id)).all())
    if roles:
        session.execute(insert(UserRole), [{"user_id": ids[e], "role_key": r} for e, r in roles])
    session.execute(insert(Child), children)
    session.execute(
        insert(CaseTeamMember),
        [
            {"child_id": child_id, "role_key": role, "user_id": ids[email]}
            for child_id, team in teams
            for role, email in team.items()
        ],
    )
    groupkeys.refile(session)  # the holders the oversight breakdowns group by, as set_case_team keeps them
    return council


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)
