"""The HTML pages: recognise (draw or upload), job pages, recent jobs, training and models.

Every page works from the JSON API through its script in static/js; the upload form and the job
pages also work without JavaScript (form post, pages that refresh until the label is in).
"""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for

from jobs.records import is_job_id
from jobs.schemas import TERMINAL
from model.training.config import ARCHITECTURES, RANGES, RECIPE_ARCHITECTURES, RECIPES, TrainConfig
from web.auth import is_admin, predict_token_if_configured
from web.clients import client_address
from web.images import check_image
from web.security import require_secret_key
from web.services import services
from web.submit import image_limits, read_field, read_mode, read_uploads, submit_predictions

bp = Blueprint("pages", __name__)
bp.before_request(require_secret_key)

RECENT_JOBS_SHOWN = 50

MIME_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "MPO": "image/jpeg", "GIF": "image/gif", "BMP": "image/bmp",
              "WEBP": "image/webp"}  # fmt: skip


@bp.get("/")
def home():
    return render_template("home.html")


@bp.post("/predict")
@predict_token_if_configured
def submit_form():
    read = read_mode(read_field(request.form), read_field(request.args))
    files = [f for f in request.files.getlist("image") if f.filename]
    images = read_uploads([(f"file {f.filename}"[:200], f) for f in files])
    # Kept as long as the jobs, for their pages to show.
    job_ids = submit_predictions(images, keep_images=True, read=read).job_ids
    if len(job_ids) == 1:
        return redirect(url_for("pages.job_page", job_id=job_ids[0]), code=303)
    return redirect(url_for("pages.jobs_page", ids=",".join(job_ids)), code=303)


@bp.get("/jobs/<job_id>")
@predict_token_if_configured
def job_page(job_id: str):
    job = services().records.get(job_id)
    if job is None:
        abort(404, description=f"no job {job_id[:64]!r}")
    return render_template("job.html", jobs=_with_uploads([job]), refresh=_unfinished([job]))


@bp.get("/jobs")
@predict_token_if_configured
def jobs_page():
    """``?ids=a,b,c``: those jobs' results (where a multi-image form post lands); else the recent
    jobs, every client's: the admin's (the page's script fetches them with the token typed on the
    Train page; a browser sends no bearer token with the page itself)."""
    records = services().records
    ids = [i for i in request.args.get("ids", "").split(",") if is_job_id(i)][: image_limits().max_images]
    if ids:
        jobs = [job for job in records.get_many(ids) if job]
        return render_template("job.html", jobs=_with_uploads(jobs), refresh=_unfinished(jobs))
    jobs = records.recent(RECENT_JOBS_SHOWN) if is_admin() else []
    return render_template("jobs.html", jobs=jobs, refresh=_unfinished(jobs), limit=RECENT_JOBS_SHOWN)


@bp.get("/train")
def train_page():
    # Epochs and architecture left empty: the chosen recipe decides (the page says which).
    defaults = TrainConfig().to_dict() | {"epochs": None, "arch": None}
    return render_template("train.html", architectures=ARCHITECTURES, ranges=RANGES, recipes=RECIPES,
                           recipe_architectures=RECIPE_ARCHITECTURES, defaults=defaults)  # fmt: skip


@bp.get("/models")
def models_page():
    return render_template("models.html")


@bp.app_template_filter("took_seconds")
def took_seconds(job: dict) -> float | None:
    """Seconds from submission to the end, as the person who submitted waited them."""
    if not job.get("finished_at"):
        return None
    created, finished = (dt.datetime.fromisoformat(job[name]) for name in ("created_at", "finished_at"))
    return (finished - created).total_seconds()


@bp.app_template_filter("plain_number")
def plain_number(value: float) -> str:
    """1e-05 -> 0.00001, 1.0 -> 1: limits as people write them."""
    return f"{value:f}".rstrip("0").rstrip(".")


def _unfinished(jobs: list[dict]) -> bool:
    return any(job["status"] not in TERMINAL for job in jobs)


def _with_uploads(jobs: list[dict]) -> list[dict]:
    """Mark the jobs whose submitted image was kept (form uploads), so the page can show it."""
    kept = services().records.keep_images([job["id"] for job in jobs], _upload_viewer())
    return [{**job, "has_upload": has} for job, has in zip(jobs, kept, strict=True)]


def _upload_viewer() -> str | None:
    """Whose kept uploads this request may see: the client's own (by address), or all with the admin token.
    An upload is the picture someone took, more theirs than the digit read from it."""
    return None if is_admin() else client_address()


@bp.get("/jobs/<job_id>/upload")
@predict_token_if_configured
def job_upload(job_id: str):
    data = services().records.kept_image(job_id, _upload_viewer())
    if data is None:  # none kept, or not this client's (the same answer: nothing is told)
        abort(404, description="no upload kept for this job")
    image_format = check_image(data, image_limits(), "upload")
    return Response(
        data,
        mimetype=MIME_TYPES.get(image_format, "application/octet-stream"),
        headers={"Content-Security-Policy": "default-src 'none'", "Cache-Control": "private, max-age=3600"},
    )
