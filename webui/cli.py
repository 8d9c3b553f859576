"""`pep-web`: serve the web app with its scheduler, and load the demo council."""

from __future__ import annotations

import logging

import click

from . import create_app

# waitress's options for `run`: no Server header (waitress would name itself), so that a scan learns
# nothing of the software from the answers.
SERVER_OPTIONS = {"ident": None}


@click.group()
def main():
    """Run the PEP web app."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("SpiffWorkflow").setLevel(logging.WARNING)
    logging.getLogger("spiff").setLevel(logging.WARNING)


@main.command()
def demo():
    """Load the demo council (people, children, PEPs in progress) unless it is there already."""
    from .demo import PASSWORD, load

    app = create_app()
    services = app.extensions["pep"]
    result = load(services.engine, services.sessions, services.engine.now().date())
    if result["people"]:
        click.echo(
            f"demo council loaded: {result['people']} people, {result['children']} children, "
            f"{result['steps']} steps played; every demo password is {PASSWORD}"
        )
    else:
        click.echo("demo council already loaded")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True)
@click.option("--threads", default=8, show_default=True)
@click.option("--sweep-seconds", default=30.0, show_default=True, help="Seconds between timer sweeps.")
def run(host, port, threads, sweep_seconds):
    """Serve the app (waitress) with the timer and notification scheduler in the same process."""
    from waitress import serve

    from engine.scheduler import make_scheduler

    app = create_app({"WARM_UP": True})
    services = app.extensions["pep"]
    scheduler = make_scheduler(
        services.engine, services.sessions, sweep_seconds, background=True, mail_settings=app.config
    )
    scheduler.start()
    click.echo(f"PEP app on http://{host}:{port}/ (sign in with a demo account; see README)")
    try:
        serve(app, host=host, port=port, threads=threads, **SERVER_OPTIONS)
    finally:
        scheduler.shutdown(wait=False)
