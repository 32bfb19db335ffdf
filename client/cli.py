"""``digits``: the service from a terminal (predict, train, job, models, activate), or predict with no service.

Exit status: 0 when everything asked for was done; 1 when some image got no digit, a job failed
or the service refused the request; 2 when no service answers at the address (or on a usage
mistake); 130 on Ctrl-C, after printing the ids of the jobs left running.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any

import click

from client import display
from client.environment import TOKEN_VARIABLE, token_from_environment
from client.errors import DigitsError, Interrupted, RequestRefused, ServiceUnavailable, ServiceUnreachable
from client.files import files_in
from client.predictions import Prediction
from client.progress import ProgressDisplay
from client.service import DEFAULT_URL, DigitsClient
from jobs.schemas import SUCCEEDED, TERMINAL

EXIT_FAILED, EXIT_NO_SERVICE, EXIT_SEVERAL_DIGITS, EXIT_INTERRUPTED = 1, 2, 3, 130


SERVER_HELP = f"The service's address (default: DIGITS_URL, else {DEFAULT_URL})."


def server_option(command):
    """``--server`` on every command that talks to the service; it may also come before the command."""
    return click.option("--server", help=SERVER_HELP)(command)


def reports_failures(command):
    """Turn the client's exceptions into one readable line and the documented exit status."""

    @functools.wraps(command)
    def wrapped(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except DigitsError as exc:
            _fail(_failure_line(exc))
            sys.exit(EXIT_NO_SERVICE if isinstance(exc, ServiceUnreachable | ServiceUnavailable) else EXIT_FAILED)
        except Interrupted as exc:
            if exc.job_ids:
                _fail(f"\ninterrupted: {len(exc.job_ids)} job(s) left running; `digits job ID` shows one:")
                for job_id in exc.job_ids:
                    _fail(job_id)
            else:
                _fail("\ninterrupted before any job id came back")
            sys.exit(EXIT_INTERRUPTED)
        except KeyboardInterrupt:
            _fail("\ninterrupted")
            sys.exit(EXIT_INTERRUPTED)

    return wrapped


def _failure_line(exc: DigitsError) -> str:
    if isinstance(exc, ServiceUnreachable):
        return f"error: {exc}. Start it with `make run` in the digits checkout, or set --server/DIGITS_URL."
    if isinstance(exc, RequestRefused):
        hint = f" (set {TOKEN_VARIABLE} to the token `make run` printed)" if exc.status in (401, 403) else ""
        return f"error: the service refused: {exc.message}{hint}"
    return f"error: {exc}"


def _fail(line: str) -> None:
    click.echo(line, err=True)


def _client(server: str | None) -> DigitsClient:
    """A client for the nearest --server given (after the command, then before it), else DIGITS_URL."""
    server = server or click.get_current_context().find_root().params.get("server") or DEFAULT_URL
    return DigitsClient(server, token=token_from_environment())


def _print_json(value: object) -> None:
    click.echo(json.dumps(value, indent=2))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--server", envvar="DIGITS_URL", help=SERVER_HELP)
def cli(server: str | None) -> None:
    """Recognise handwritten digits with a Digits service (`make run` starts one), or locally with --local.

    The service's address comes from --server or DIGITS_URL; training, cancelling and
    activating need the service's admin token in DIGITS_ADMIN_TOKEN.
    """


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write results here.")
@click.option("--json", "as_json", is_flag=True, help="Full records, one JSON object per line.")
@click.option("--number", is_flag=True, help="Each image is one handwritten number: print its digits.")
@click.option("--auto", is_flag=True, help="Each image: its digit, or its number when it holds several digits.")
@click.option("--single-ok", is_flag=True, help="Exit 0 when an image read as one digit seems to hold several.")
@click.option("--local", is_flag=True, help="No service: run the model in this process.")
@click.option("--model", "model_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="With --local: this .keras file instead of the shipped model.")  # fmt: skip
@click.option("--timeout", type=float, default=300.0, show_default=True, help="Seconds to wait for the answers.")
@click.option("--deadline-ms", type=click.IntRange(0), help="An image no worker has begun within this is never read.")
@server_option
@reports_failures
def predict(
    paths: tuple[Path, ...], output: Path | None, as_json: bool, number: bool, auto: bool, single_ok: bool,
    local: bool, model_file: Path | None, timeout: float, deadline_ms: int | None, server: str | None,
) -> None:  # fmt: skip
    """Print `path<TAB>digit<TAB>confidence` for each image (with --number, the number's digits
    for the digit); directories are walked.

    With one image and --output FILE, FILE holds just the digit (or the number). A file that is
    not an image gets an error line and the exit status 1; the other images are still answered.
    An image read as one digit that seems to hold several gets a hint after its digit and the
    exit status 3 (unless --single-ok): read it with --number or --auto.
    """
    if number and auto:
        raise click.UsageError("--number and --auto: give one")
    read = "number" if number else "auto" if auto else "digit"
    files = list(files_in(paths))
    if not files:
        raise click.UsageError("no files found in " + ", ".join(str(p) for p in paths))
    if model_file and not local:
        raise click.UsageError("--model needs --local (the service serves its own active model)")
    if local:
        from client.local import predict_locally
        from model.shipped import SHIPPED_MODEL

        predictions = predict_locally(files, model_file or SHIPPED_MODEL, read)
    else:
        predictions = _client(server).predict(files, read=read, timeout=timeout, deadline_ms=deadline_ms)
    _report(predictions, output, as_json)
    if not all(p.ok for p in predictions):
        sys.exit(EXIT_FAILED)
    if not single_ok and any(p.hint for p in predictions):
        if output is not None or as_json:  # the hint is not on the terminal otherwise
            _fail("hint: an image seems to hold several digits: read it with --number (or --auto)")
        sys.exit(EXIT_SEVERAL_DIGITS)


def _report(predictions: list[Prediction], output: Path | None, as_json: bool) -> None:
    lines = [json.dumps(p.to_json()) if as_json else display.prediction_line(p) for p in predictions]
    if output is None:
        for line in lines:
            click.echo(line)
        return
    if len(predictions) == 1 and not as_json:
        # As the notebook this grew from did: the file holds the digit (or number) and nothing else.
        if predictions[0].ok:
            answer = predictions[0].label
            output.write_text(str(predictions[0].text if answer is None else answer))
        else:
            _fail(lines[0])
        return
    output.write_text("".join(line + "\n" for line in lines))
    for prediction, line in zip(predictions, lines, strict=True):
        if not prediction.ok:
            _fail(display.prediction_line(prediction) if as_json else line)


@cli.command()
@click.option(
    "--recipe",
    help="fast (the service's default: about 99.2 %) or strong (the best model, several times longer).",
)
@click.option("--arch", help="Network: seed or default (the service's default: default).")
@click.option("--epochs", type=int, help="Passes over the training images (default: the recipe's).")
@click.option("--batch-size", type=int)
@click.option("--learning-rate", type=float, help="Peak learning rate (default: per architecture).")
@click.option("--augment/--no-augment", default=None, help="Shift, rotate and scale the training images.")
@click.option("--train-limit", type=int, help="Train on the first N training images only (quick trials).")
@click.option("--include-feedback", is_flag=True, default=None, help="Train on the corrections too (not the held-out).")
@click.option("--base-version", type=click.IntRange(min=1), help="Fine-tune this stored version.")
@click.option(
    "--activate",
    type=click.Choice(["never", "always", "if-better"]),
    help="Serve the new model when done: never (the default), always, or if it beats the active one.",
)
@click.option("--wait", is_flag=True, help="Show progress until the job ends, then the new model's card.")
@click.option("--json", "as_json", is_flag=True, help="Print the job record as JSON (with the full card).")
@server_option
@reports_failures
def train(wait: bool, as_json: bool, server: str | None, **options: Any) -> None:
    """Submit a training job (needs DIGITS_ADMIN_TOKEN); options left out take the service's defaults."""
    client = _client(server)
    submitted = client.train(**options)
    job_id = submitted["job_id"]
    if not wait:
        if as_json:
            _print_json(submitted)
        else:
            click.echo(f"training job {job_id} {submitted.get('status')}; follow it: digits job {job_id} --wait")
        return
    try:
        _fail(f"training job {job_id} submitted; Ctrl-C stops waiting, not the job")
        record = _wait_with_progress(client, job_id)
    except KeyboardInterrupt:
        raise Interrupted([job_id]) from None
    if record["status"] == "succeeded" and not as_json:
        result = record["result"]
        click.echo(display.card_text(result["card"]))
        if result.get("activated"):
            click.echo(f"model version {result['model_version']} is now active")
        elif options.get("activate") != "never":
            why = result.get("activation") or "it was not activated"
            click.echo(f"not activated: {why}; serve it anyway with: digits activate {result['model_version']}")
        else:
            click.echo(f"serve it with: digits activate {result['model_version']}")
    else:
        _show_job(record, as_json)


def _wait_with_progress(client: DigitsClient, job_id: str) -> dict:
    progress = ProgressDisplay()
    try:
        return client.wait(job_id, on_progress=progress.update)
    finally:
        progress.close()


def _show_job(record: dict, as_json: bool) -> None:
    """Print a job's record; exit 1 if it failed, was cancelled or expired."""
    click.echo(json.dumps(record, indent=2) if as_json else display.job_text(record))
    if record.get("status") in TERMINAL - {SUCCEEDED}:
        sys.exit(EXIT_FAILED)


@cli.command()
@click.argument("job_id")
@click.option("--wait", is_flag=True, help="Wait for the job to end (showing a training job's progress).")
@click.option("--json", "as_json", is_flag=True, help="The full record as JSON.")
@server_option
@reports_failures
def job(job_id: str, wait: bool, as_json: bool, server: str | None) -> None:
    """Show a job: its status and label, progress, card or error."""
    client = _client(server)
    record = client.job(job_id)
    if wait and record["status"] not in TERMINAL:
        record = _wait_with_progress(client, job_id) if record["type"] == "train" else client.wait(job_id)
    _show_job(record, as_json)


@cli.command()
@click.argument("job_id")
@click.argument("digit", type=click.IntRange(0, 9))
@server_option
@reports_failures
def correct(job_id: str, digit: int, server: str | None) -> None:
    """Say that prediction JOB_ID shows DIGIT: it is kept to train and judge later models."""
    kept = _client(server).correct(job_id, digit)
    said = f"the model said {kept['predicted']}" + (", corrected" if kept["corrected"] else ", confirmed")
    click.echo(f"job {job_id}: {digit} ({said}){'; replaces the earlier correction' if kept['replaced'] else ''}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Every card in full, as JSON.")
@server_option
@reports_failures
def models(as_json: bool, server: str | None) -> None:
    """List the model versions; `*` marks the one being served."""
    listing = _client(server).models()
    if as_json:
        _print_json(listing)
    else:
        click.echo(display.models_table(listing))


@cli.command()
@click.argument("version", type=click.IntRange(min=1))
@server_option
@reports_failures
def activate(version: int, server: str | None) -> None:
    """Serve model VERSION from now on (needs the admin token in DIGITS_ADMIN_TOKEN)."""
    answer = _client(server).activate(version)
    click.echo(f"model version {answer['active_version']} is now active")


def main() -> None:
    """The ``digits`` console script."""
    cli(prog_name="digits")
