"""The screenshot set: `python -m tools.screens` (or `make screens`) starts the app on a temporary demo
database, signs in as each role's demo account with Playwright and Debian's Chromium, and saves each role's
main pages at desktop (1280 px) and phone (390 px) width as PNG under docs/screens/.

Nothing it makes is kept but the pictures: the database, history key and checkpoints live in a temporary
directory removed at the end. Every name in them is the demo council's (invented)."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screens"
BIN = Path(sys.executable).parent
CHROMIUM = os.environ.get("PEP_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
PASSWORD = "demo-pep-2026"
WIDTHS = {"desktop": 1280, "phone": 390}
MAX_HEIGHT = 2400  # px of a picture: the top of a long page is what a reader of the docs needs

# role: (demo account, [(name, path or a link to follow from the inbox)])
ROLES = {
    "social-worker": ("sw@demo.test", [("inbox", "/inbox"), ("task", "first-task"), ("child", "first-child")]),
    "designated-teacher": ("dt.oak@demo.test", [("inbox", "/inbox"), ("task", "first-task")]),
    "education-adviser": ("ea@demo.test", [("inbox", "/inbox"), ("pool", "/inbox?view=pool")]),
    "vs-administrator": ("admin@demo.test", [("inbox", "/inbox"), ("people", "/admin/users")]),
    "virtual-school-head": (
        "vsh@demo.test",
        [
            ("inbox", "/inbox"),
            ("timeliness", "/oversight/timeliness"),
            ("overdue", "/oversight/overdue"),
            ("ppplus", "/oversight/ppplus"),
            ("quality", "/oversight/quality"),
        ],
    ),
    "business-support": (
        "bso@demo.test",
        [("inbox", "/inbox"), ("pool", "/inbox?view=pool"), ("children", "/children")],
    ),
    "process-owner": ("owner@demo.test", [("processes", "/processes")]),
    "auditor": ("auditor@demo.test", [("audit", "/audit")]),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(port: int, seconds: float = 60) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"the app did not start on port {port}")


def _open(page, target: str) -> bool:
    """Go to a path, or follow the first task or child link of the inbox; False when there is none."""
    if target.startswith("/"):
        page.goto(target)
        return True
    page.goto("/inbox")
    link = page.locator("a[href^='/tasks/']" if target == "first-task" else "a[href^='/children/']").first
    if link.count() == 0:
        return False
    page.goto(link.get_attribute("href"))
    return True


def shoot(base_url: str) -> list[Path]:
    from playwright.sync_api import sync_playwright

    saved = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        for role, (email, pages) in ROLES.items():
            for size, width in WIDTHS.items():
                context = browser.new_context(base_url=base_url, viewport={"width": width, "height": 900})
                page = context.new_page()
                page.goto("/sign-in")
                page.get_by_label("Email address").fill(email)
                page.get_by_label("Password").fill(PASSWORD)
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_load_state()
                for name, target in pages:
                    if not _open(page, target):
                        continue
                    height = min(page.evaluate("document.documentElement.scrollHeight"), MAX_HEIGHT)
                    path = OUT / f"{role}-{name}-{size}.png"
                    page.screenshot(
                        path=str(path), clip={"x": 0, "y": 0, "width": width, "height": height}, full_page=True
                    )
                    saved.append(path)
                context.close()
        browser.close()
    return saved


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pep-screens-") as tmp:
        env = {
            **os.environ,
            "PEP_DATABASE_URL": f"sqlite:///{tmp}/demo.sqlite",
            "PEP_SECURE_COOKIES": "0",
            "PEP_HISTORY_KEY": secrets.token_hex(32),
            "PEP_CHECKPOINTS": f"{tmp}/checkpoints.jsonl",
            "PEP_SECRET_KEY": secrets.token_hex(32),
            "PYTHONPATH": str(ROOT),
        }  # this checkout's code, whichever checkout the environment was installed from
        for command in (["pep", "init"], ["pep", "deploy", "--as", "setup@demo.test"], ["pep-web", "demo"]):
            subprocess.run(
                [str(BIN / command[0]), *command[1:]], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL
            )
        port = _free_port()
        server = subprocess.Popen(
            [str(BIN / "pep-web"), "run", "--port", str(port), "--sweep-seconds", "3600"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait(port)
            saved = shoot(f"http://127.0.0.1:{port}")
        finally:
            server.terminate()
            server.wait(timeout=30)
    for path in saved:
        print(path.relative_to(ROOT), f"{path.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
