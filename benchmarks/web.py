"""The web load run: the app under gunicorn with 2 worker processes (on PostgreSQL each with 4 threads,
the gthread worker; on SQLite the sync worker; BENCH_WEB_THREADS=n chooses), and simulated
professionals (threads, one signed-in session each) who open their inbox and submit real tasks of a
simulated council.

Preparation plays a few weeks of a council up to today (the app runs on the real clock), gives every
professional a password, and works out valid answers for each open task, so that every POST is a real
task submission that the engine accepts.
"""

from __future__ import annotations

import html
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import date, timedelta
from http.cookiejar import CookieJar
from pathlib import Path

from sqlalchemy import select

from engine.db import make_db, session_factory
from engine.errors import EngineError
from engine.models import OpenTask, User
from engine.runtime import Engine
from webui.auth import hash_password
from webui.formschema import widget_for

from .measure import Samples
from .professionals import NotYet, inline_refs
from .run import ROOT, fresh_database
from .simulate import Simulation

PASSWORD = "bench-pep-2026"
WORKERS = 2
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
VERSION = re.compile(r'name="_version"[^>]*value="([^"]+)"')
BASIS = re.compile(r'name="_basis"[^>]*value="([^"]*)"')


def threads_for(url: str) -> int:
    """Threads per gunicorn worker, as docs/benchmarks.md recommends for the database. With the sync
    worker (1) a request that arrives while both workers are busy waits for one of them to finish.
    On PostgreSQL a request spends part of its time waiting for the database (its own processes, the
    commit reaching the disk), and a worker's other threads use that time. On SQLite the database
    runs inside the worker, under its interpreter lock, and writers take turns on one file: threads
    only add waiting, and the sync worker is faster."""
    if os.environ.get("BENCH_WEB_THREADS"):
        return int(os.environ["BENCH_WEB_THREADS"])
    return 4 if url.startswith("postgresql") else 1


@dataclass
class Job:
    email: str
    task_id: str
    fields: list[tuple[str, str]]


@dataclass
class WebFigures:
    users: int
    think: float = 0.0
    threads: int = 1
    seconds: float = 0.0
    inbox: Samples = field(default_factory=Samples)
    submit: Samples = field(default_factory=Samples)
    sign_in: Samples = field(default_factory=Samples)
    # the same requests' time inside a gunicorn worker (its access log), without the wait for a worker
    in_worker: dict[str, Samples] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    # each refused submission (409), by whether it was a real conflict (see SimulatedUser._classify)
    conflicts: dict[str, int] = field(default_factory=dict)
    server_cpu: float = 0.0  # seconds of CPU the gunicorn processes used, from start-up to shutdown
    load_cpu: float = 0.0  # seconds of CPU the simulated users (this process) used meanwhile

    def report(self) -> str:
        rate = (len(self.inbox) + len(self.submit)) / self.seconds if self.seconds else 0.0
        server = f"{WORKERS} workers" + (f" x {self.threads} threads (gthread)" if self.threads > 1 else " (sync)")
        lines = [
            f"web load                      {self.users} concurrent users, {self.think:g} s between pages, "
            f"gunicorn {server}, {self.seconds:.0f} s, {rate:.1f} requests/s (inbox pages and submissions; "
            f"each also opens its task page)"
        ]
        for name, samples, kind in (
            ("inbox page (GET /inbox)", self.inbox, "inbox"),
            ("task submission (POST)", self.submit, "submit"),
            ("sign-in (POST /sign-in)", self.sign_in, "sign-in"),
        ):
            lines.append(
                f"{name:29s} p50 {samples.ms(50):.0f} ms   p95 {samples.ms(95):.0f} ms   "
                f"p99 {samples.ms(99):.0f} ms   ({len(samples)} requests, "
                f"{len(samples) / self.seconds if self.seconds else 0:.1f}/s)"
            )
            if self.in_worker.get(kind):
                worker = self.in_worker[kind]
                lines.append(
                    f"{'  of which in the worker':29s} p50 {worker.ms(50):.0f} ms   p95 {worker.ms(95):.0f} ms   "
                    f"p99 {worker.ms(99):.0f} ms   (gunicorn's own request time)"
                )
        lines.append(
            f"sign-ins per submission       {len(self.sign_in) / len(self.submit) if self.submit else 0:.2f} "
            f"(one per professional, who then works through their open tasks)"
        )
        false = self.conflicts.get(FALSE_CONFLICT, 0)
        real = {kind: n for kind, n in self.conflicts.items() if kind != FALSE_CONFLICT}
        lines.append(
            f"false conflicts               {false} (409s whose task was still ready and its page's basis "
            f"unchanged; expected 0)"
        )
        lines.append(f"real conflicts                {sum(real.values())} {real or ''}".rstrip())
        lines.append(f"errors                        {self.errors or 'none'}")
        lines.append(
            f"CPU                           server {self.server_cpu:.1f} s (gunicorn, start-up included), "
            f"simulated users {self.load_cpu:.1f} s"
        )
        lines.append(
            f"machine                       {os.cpu_count()} CPUs; load average over the last 5 minutes "
            f"{os.getloadavg()[1]:.1f}"
        )
        return "\n".join(lines)


def prepare(url: str, children: int, weeks: int, today: date) -> list[Job]:
    """Play a council up to today and answer every open task that has a person and no upload."""
    db = fresh_database(url)
    sessions = session_factory(db)
    simulation = Simulation(sessions, ROOT, children, today - timedelta(weeks=weeks), today - timedelta(days=1))
    simulation.set_up()
    simulation.run()
    simulation.clock.set(simulation.engine.clock.now().replace(year=today.year, month=today.month, day=today.day))
    jobs = []
    with sessions.begin() as session:
        password = hash_password(PASSWORD)
        for user in session.scalars(select(User)):
            user.password_hash = password
        tasks = session.scalars(select(OpenTask).where(OpenTask.assignee_id.is_not(None))).all()
        emails = dict(session.execute(select(User.id, User.email)).all())
        for task in tasks:
            schema = simulation.forms.get(task.form or "", {})
            if not web_form_can_send(schema):
                continue
            view = simulation.engine.task_view(session, task.id, emails[task.assignee_id])
            try:
                answers = simulation.professional.answers(schema, view["data"], today)
            except NotYet:
                continue  # its meeting is still to come
            jobs.append(Job(emails[task.assignee_id], task.id, form_fields(inline_refs(schema), answers)))
    return jobs


def web_form_can_send(schema: dict) -> bool:
    """Whether the web form can carry every answer: uploads need a file, and lists of plain values
    (not groups) have no web widget yet."""
    for spec in schema.get("properties", {}).values():
        items = spec.get("items", {}) if spec.get("type") == "array" else {}
        if spec.get("x-widget") == "attachment" or (items and "enum" not in items and items.get("type") != "object"):
            return False
    return True


def form_fields(schema: dict, answers: dict, prefix: str = "") -> list[tuple[str, str]]:
    """The posted fields a person filling in the form would send for these answers."""
    fields = []
    for name, value in answers.items():
        spec, path = schema.get("properties", {}).get(name, {}), f"{prefix}{name}"
        if isinstance(value, bool):
            fields.append((path, "yes" if value else "no"))
        elif isinstance(value, dict):
            fields += form_fields(spec, value, f"{path}.")
        elif isinstance(value, list) and "enum" in spec.get("items", {}):
            fields += [(path, str(v)) for v in value]
        elif isinstance(value, list):
            for n, item in enumerate(value):
                item_schema = (
                    (spec.get("prefixItems") or [])[n]
                    if n < len(spec.get("prefixItems") or [])
                    else spec.get("items", {})
                )
                fields += (
                    form_fields({**spec.get("items", {}), **item_schema}, item, f"{path}.{n}.")
                    if isinstance(item, dict)
                    else [(f"{path}.{n}", str(item))]
                )
        elif widget_for(spec) == "date":
            year, month, day = str(value).split("-")
            fields += [(f"{path}-day", day), (f"{path}-month", month), (f"{path}-year", year)]
        else:
            fields.append((path, str(value)))
    return fields


FALSE_CONFLICT = "false: the task was still ready and its page unchanged"


class SimulatedUser(threading.Thread):
    """One concurrent user: signs in as each of its professionals in turn and, as each, works through
    all their open tasks (opens the inbox, opens a task and submits it), as a person signs in once and
    then clears their inbox, until time is up or no work is left. Users arrive `delay` seconds apart
    (spread over the first page cycle), not all in the same instant."""

    def __init__(
        self,
        base: str,
        people: list[list[Job]],
        figures: WebFigures,
        stop_at: float,
        lock: threading.Lock,
        think: float,
        delay: float = 0.0,
        sessions=None,
    ):
        super().__init__(daemon=True)
        self.base, self.people, self.figures, self.stop_at, self.lock = base, people, figures, stop_at, lock
        self.sessions = sessions  # the database, read directly to tell a refused submission's cause
        self.engine = Engine() if sessions is not None else None
        self.think = think  # seconds between one page and the next: reading the inbox, filling the form
        self.delay = delay

    def run(self) -> None:
        time.sleep(self.delay)
        for jobs in self.people:
            if time.monotonic() > self.stop_at:
                return
            self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()), _NoRedirect)
            page = self._get("/sign-in")
            with self.figures.sign_in.timing():
                self._post("/sign-in", [("csrf_token", _token(page)), ("email", jobs[0].email), ("password", PASSWORD)])
            self._work(jobs)

    def _work(self, jobs: list[Job]) -> None:
        for job in jobs:
            if time.monotonic() > self.stop_at:
                return
            with self.figures.inbox.timing():
                self._get("/inbox")
            time.sleep(self.think)
            page = self._get(f"/tasks/{job.task_id}")
            time.sleep(self.think)
            if not page:
                continue
            version, basis = VERSION.search(page), BASIS.search(page)
            fields = [("csrf_token", _token(page)), ("_do", "submit"), *job.fields]
            if version:
                fields.append(("_version", html.unescape(version.group(1))))
            if basis:
                fields.append(("_basis", html.unescape(basis.group(1))))
            started = time.perf_counter()
            status, reply = self._post(f"/tasks/{job.task_id}", fields)
            elapsed = time.perf_counter() - started
            with self.lock:
                self.figures.submit.append(elapsed)
            if status == 409 and self.sessions is not None:
                kind = self._classify(job, basis.group(1) if basis else None)
                with self.lock:
                    self.figures.conflicts[kind] = self.figures.conflicts.get(kind, 0) + 1
            elif status != 302:
                self._error(f"submit {status}: {_first_error(reply)}")

    def _classify(self, job: Job, basis: str | None) -> str:
        """Whether a refused submission was a real conflict, read from the database just after: real if
        the task is no longer open (completed or withdrawn) or its page would now be built from other
        data than the page posted (`Engine.page_basis`); false if it is still ready and unchanged."""
        with self.sessions() as session:
            try:
                now = self.engine.task_view(session, job.task_id, job.email)["basis"]
            except EngineError:
                return "real: the task is no longer open"
        return FALSE_CONFLICT if now == basis else "real: what the page shows changed"

    def _get(self, path: str) -> str:
        try:
            with self.opener.open(self.base + path, timeout=60) as response:
                return response.read().decode()
        except urllib.error.HTTPError as exc:
            self._error(f"GET {exc.code}")
            return ""

    def _post(self, path: str, fields: list[tuple[str, str]]) -> tuple[int, str]:
        body = urllib.parse.urlencode(fields).encode()
        try:
            with self.opener.open(urllib.request.Request(self.base + path, data=body), timeout=60) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def _error(self, kind: str) -> None:
        with self.lock:
            self.figures.errors[kind] = self.figures.errors.get(kind, 0) + 1


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a 302 after sign-in or a submission is the answer; the next request follows on


def _first_error(page: str) -> str:
    """The first message of the page's error summary (or of its conflict banner), to count by cause."""
    match = re.search(r"govuk-error-summary__list.*?<a[^>]*>(.*?)</a>", page, re.S) or re.search(
        r"govuk-notification-banner__heading[^>]*>(.*?)<", page, re.S
    )
    return html.unescape(re.sub(r"\s+", " ", match.group(1))).strip()[:120] if match else "?"


def _token(page: str) -> str:
    match = CSRF.search(page)
    return html.unescape(match.group(1)) if match else ""


def serve(
    url: str, port: int, workers: int = WORKERS, threads: int = 1, access_log: str | None = None
) -> subprocess.Popen:
    """Start gunicorn with the app; return once it answers. With `access_log`, gunicorn writes each
    request's method, path, status and time in the worker (microseconds) there."""
    env = {
        **os.environ,
        "PEP_DATABASE_URL": url,
        "PEP_SECURE_COOKIES": "0",
        "PEP_SECRET_KEY": "bench-secret-key",
        "PEP_WARM_UP": "1",
    }
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "--workers",
            str(workers),
            "--bind",
            f"127.0.0.1:{port}",
            *(["--worker-class", "gthread", "--threads", str(threads)] if threads > 1 else []),
            *(["--access-logfile", access_log, "--access-logformat", "%(m)s %(U)s %(s)s %(D)s"] if access_log else []),
            "--log-level",
            "warning",
            "webui:create_app()",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/sign-in", timeout=2).read()
            return server
        except OSError:
            time.sleep(0.2)
    stop(server)
    raise RuntimeError("gunicorn did not start")


def stop(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=30)


def load(
    url: str, jobs: list[Job], users: int, seconds: float, port: int, think: float = 0.0, threads: int | None = None
) -> WebFigures:
    """Run `users` concurrent users against the served app for at most `seconds`."""
    threads = threads or threads_for(url)
    by_person: dict[str, list[Job]] = {}
    for job in jobs:
        by_person.setdefault(job.email, []).append(job)
    people = sorted(by_person.values(), key=len, reverse=True)
    shares = [people[n::users] for n in range(min(users, len(people)))]
    figures, lock = WebFigures(users=len(shares), think=think, threads=threads), threading.Lock()
    server_cpu, load_cpu = _children_cpu(), time.process_time()
    handle, access_log = tempfile.mkstemp(prefix="bench-web-access-", suffix=".log")
    os.close(handle)
    server = serve(url, port, threads=threads, access_log=access_log)
    database = make_db(url)
    sessions = session_factory(database)
    try:
        started = time.monotonic()
        # arrivals spread over one page cycle (two pauses), so that 20 sign-ins do not all come at once
        threads = [
            SimulatedUser(
                f"http://127.0.0.1:{port}",
                share,
                figures,
                started + seconds,
                lock,
                think,
                delay=n * 2 * think / len(shares),
                sessions=sessions,
            )
            for n, share in enumerate(shares)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        figures.seconds = time.monotonic() - started
    finally:
        stop(server)
        database.dispose()
    figures.server_cpu, figures.load_cpu = _children_cpu() - server_cpu, time.process_time() - load_cpu
    figures.in_worker = _times_in_worker(access_log)
    os.unlink(access_log)
    return figures


def _times_in_worker(access_log: str) -> dict[str, Samples]:
    """Each kind of timed request's time inside a worker, from gunicorn's access log."""
    kinds: dict[str, Samples] = {"inbox": Samples(), "submit": Samples(), "sign-in": Samples()}
    for line in Path(access_log).read_text().splitlines():
        parts = line.split()
        if len(parts) != 4 or not parts[3].isdigit():
            continue
        method, path, _status, micro = parts
        if (method, path) == ("GET", "/inbox"):
            kind = "inbox"
        elif method == "POST" and path.startswith("/tasks/"):
            kind = "submit"
        elif (method, path) == ("POST", "/sign-in"):
            kind = "sign-in"
        else:
            continue
        kinds[kind].append(int(micro) / 1e6)
    return kinds


def _children_cpu() -> float:
    """CPU seconds used by this process's finished children (gunicorn, once stopped, with its workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
