"""The sample council that ``make demo`` loads: writes demo/staff.csv and demo/cases.csv.

Made-up people (addresses on the reserved ``council.example`` domain) and pseudonymous case
references only; no child is named anywhere. Two services under one assistant director,
each with a head of service and three teams (a team manager, an advanced practitioner and
three social workers each), and a quality assurance unit whose lead auditor also audits:
the person at the keyboard in the demo.

Deterministic: run ``python scripts/demo_council.py`` to rewrite the files; a test checks
the committed files are exactly what this writes, and that they import cleanly.
"""

from __future__ import annotations

import csv
import io
import sys
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = ROOT / "demo"
DOMAIN = "council.example"

#: The person at the keyboard in the Agents Playground: lead auditor and an auditor too.
CURRENT_USER = ("D900", "Sam Rivers")
#: Five more people the Playground's mock tenant knows (it needs exactly five).
PLAYGROUND_USERS = ("D100", "D200", "D111", "D211", "D910")

SERVICES = (
    # (head of service id, name, [(team, area of planning for its cases), ...])
    ("D100", "Helen Baptiste", [("Assessment 1", "children_in_need"),
                                ("Assessment 2", "children_in_need"),
                                ("Child Protection", "child_protection")]),
    ("D200", "Omar Siddiqui", [("Children in Care 1", "children_in_care"),
                               ("Children in Care 2", "children_in_care"),
                               ("Disabled Children", "disabled_children")]),
)
#: Per team: team manager, advanced practitioner, three social workers.
NAMES = (
    ("Priya Nair", "Kwame Asante", "Lucy Brennan", "Tariq Hussain", "Megan Price"),
    ("Daniel Okoro", "Aisha Rahman", "Chloe Whitfield", "Marek Nowak", "Hannah Lowe"),
    ("Ruth Adeyemi", "Connor Walsh", "Zainab Ali", "Oliver Grant", "Fatima Sheikh"),
    ("Tom Fletcher", "Nadia Haddad", "Ellie Morgan", "Samuel Osei", "Jasmine Patel"),
    ("Grace O'Neill", "Imran Chaudhry", "Beth Harding", "Yusuf Karim", "Rosa Martins"),
    ("Alex Kim", "Joanna Reid", "Leon Baptiste", "Sofia Rossi", "Kieran Doyle"),
)
THEMES = ("neglect", "domestic_abuse", "parental_mental_health", "substance_misuse",
          "criminal_exploitation", "missing_from_home")
CASES_PER_TEAM = 8
FIRST_OPENED = date(2024, 2, 5)


@dataclass(frozen=True)
class Person:
    staff_id: str
    name: str
    roles: tuple[str, ...]
    team: str
    manager_id: str

    @property
    def email(self) -> str:
        local = self.name.lower().replace("'", "").replace(" ", ".")
        return f"{local}@{DOMAIN}"


def people() -> list[Person]:
    out = [Person("D001", "Morgan Ellis", ("assistant_director",), "", "")]
    n = 0
    for head_id, head, teams in SERVICES:
        out.append(Person(head_id, head, ("head_of_service",), "", "D001"))
        for offset, (team, _area) in enumerate(teams, start=1):
            tm, ap, *workers = NAMES[n]
            n += 1
            base = int(head_id[1:]) + offset * 10
            tm_id = f"D{base + 1}"
            out.append(Person(tm_id, tm, ("team_manager",), team, head_id))
            out.append(Person(f"D{base + 2}", ap, ("advanced_practitioner",), team, tm_id))
            out += [Person(f"D{base + 3 + i}", w, ("social_worker",), team, tm_id)
                    for i, w in enumerate(workers)]
    lead_id, lead = CURRENT_USER
    out.append(Person(lead_id, lead, ("qa_lead", "advanced_practitioner"), "Quality Assurance",
                      "D001"))
    out.append(Person("D910", "Grace Adebayo", ("iro",), "Quality Assurance", lead_id))
    out.append(Person("D911", "Ben Kowalski", ("cp_chair",), "Quality Assurance", lead_id))
    return out


def cases() -> list[tuple[str, str, str, str, str, str, str]]:
    """(case_ref, team, social_worker_id, area, opened_on, status, tags), pseudonymous."""
    staff = people()
    out = []
    ref = 10000
    for _head_id, _head, teams in SERVICES:
        for team, area in teams:
            holders = [p for p in staff if p.team == team
                       and p.roles[0] in ("social_worker", "advanced_practitioner")]
            for i in range(CASES_PER_TEAM):
                ref += 7
                holder = holders[i % len(holders)]
                opened = FIRST_OPENED + timedelta(days=(ref * 37) % 600)
                tags = ";".join(sorted({THEMES[ref % len(THEMES)],
                                        THEMES[(ref // 3) % len(THEMES)]}))
                out.append((f"C-{ref}", team, holder.staff_id, area, opened.isoformat(), "open",
                            tags))
    return out


def staff_csv() -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(("staff_id", "name", "email", "roles", "team", "manager_id"))
    for p in people():
        writer.writerow((p.staff_id, p.name, p.email, ";".join(p.roles), p.team, p.manager_id))
    return buf.getvalue()


def cases_csv() -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(("case_ref", "team", "social_worker_id", "area_of_planning", "opened_on",
                     "status", "tags"))
    writer.writerows(cases())
    return buf.getvalue()


def main() -> int:
    DEMO_DIR.mkdir(exist_ok=True)
    (DEMO_DIR / "staff.csv").write_text(staff_csv(), encoding="utf-8")
    (DEMO_DIR / "cases.csv").write_text(cases_csv(), encoding="utf-8")
    sys.stdout.write(f"wrote {DEMO_DIR / 'staff.csv'} and {DEMO_DIR / 'cases.csv'}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
