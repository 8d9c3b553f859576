"""Runs the council's PEP processes (see engine/README.md)."""

from pathlib import Path

# The defaults a council starts from (roles, term dates, statutory rules, overdue policy, PP+), shipped
# with the package; `config/` in a checkout is the same folder.
CONFIG = Path(__file__).resolve().parent / "config"
