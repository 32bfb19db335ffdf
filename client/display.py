"""Plain-text renderings of predictions, training progress, model cards and job records for the terminal."""

from __future__ import annotations

from client.predictions import Prediction

BULKY_CARD_FIELDS = frozenset({"confusion_matrix", "mistakes"})  # shown with --json only
BAR_WIDTH = 24


def prediction_line(prediction: Prediction) -> str:
    """``path<TAB>label<TAB>confidence`` (a number: its text for the label); without a label, ``-``
    and what happened instead; a digit with a hint (several digits in the image) says so after it."""
    if prediction.label is not None and prediction.hint:
        line = f"{prediction.source}\t{prediction.label}\t{prediction.confidence:.4f}"
        return f"{line}\thint: {prediction.hint_reason or prediction.hint} (digits predict --number)"
    if prediction.label is not None:
        return f"{prediction.source}\t{prediction.label}\t{prediction.confidence:.4f}"
    if prediction.text:
        return f"{prediction.source}\t{prediction.text}\t{prediction.confidence:.4f}"
    if prediction.error:
        return f"{prediction.source}\t-\terror: {_error_text(prediction.error)}"
    return f"{prediction.source}\t-\tno digit: {prediction.reason or 'blank'}"


def _error_text(error: dict) -> str:
    return str(error.get("message") or error.get("code") or "failed")


def progress_line(progress: dict) -> str:
    """``epoch 2/5 [#####.....] batch 120/430  loss 0.1234  accuracy 0.9612  elapsed 0:42  ETA 1:10``."""
    epoch, epochs = progress.get("epoch", 0), progress.get("epochs", 0)
    batch, batches = progress.get("batch", 0), progress.get("batches", 0)
    total = epochs * batches
    done = (max(epoch, 1) - 1) * batches + batch
    # The share of the expected time (evaluation included) when the worker could tell; else of the batches.
    share = progress.get("fraction")
    if not isinstance(share, int | float):
        share = done / total if total else 0
    filled = round(BAR_WIDTH * min(max(share, 0), 1))
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    parts = [f"epoch {epoch}/{epochs} [{bar}] batch {batch}/{batches}"]
    for name in ("loss", "accuracy"):
        if isinstance(progress.get(name), int | float):
            parts.append(f"{name} {progress[name]:.4f}")
    parts.append(f"elapsed {_duration(progress.get('elapsed_s'))}")
    parts.append("stopped" if progress.get("stopped") else f"ETA {_duration(progress.get('eta_s'))}")
    return "  ".join(parts)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def card_text(card: dict, active: bool | None = None) -> str:
    """A model card as aligned ``name  value`` lines, history as a table; confusion matrix and mistakes left out."""
    version = card.get("version", "?")
    state = ""
    if active is not None:
        state = " (active)" if active else f" (not active: `digits activate {version}` serves it)"
    lines = [f"model version {version}{state}"]
    if isinstance(card.get("test_accuracy"), int | float):
        lines.append(f"  {'test accuracy':<20}{card['test_accuracy'] * 100:.2f} %")
    for name, value in card.items():
        if name in BULKY_CARD_FIELDS or name in ("version", "test_accuracy", "history"):
            continue
        if name == "held_out_corrections" and isinstance(value, dict):  # its tables are for the page
            value = {"count": value.get("count"), "accuracy": value.get("accuracy")}
        if isinstance(value, dict):
            value = " ".join(f"{k}={v}" for k, v in value.items())
        lines.append(f"  {name.replace('_', ' '):<20}{value}")
    history = card.get("history") or []
    if history:
        columns = list(dict.fromkeys(key for row in history for key in row))
        lines.append("  history")
        lines.append("    " + "  ".join(f"{c:>12}" for c in columns))
        for row in history:
            lines.append("    " + "  ".join(f"{_cell(row.get(c)):>12}" for c in columns))
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)


def models_table(listing: dict) -> str:
    """One line per version, ``*`` marking the active one."""
    active = listing.get("active_version")
    header = f"  {'version':>7}  {'arch':<8}  {'epochs':>6}  {'test accuracy':>13}  {'created':<25}  training job"
    lines = [header]
    for card in listing.get("models", []):
        accuracy = card.get("test_accuracy")
        accuracy_text = f"{accuracy * 100:.2f} %" if isinstance(accuracy, int | float) else "-"
        lines.append(
            f"{'*' if card.get('version') == active else ' '} {card.get('version', '?'):>7}  "
            f"{str(card.get('arch', '-')):<8}  {str(card.get('epochs', '-')):>6}  {accuracy_text:>13}  "
            f"{str(card.get('created_at', '-')):<25}  {card.get('training_job_id') or '-'}"
        )
    return "\n".join(lines)


def job_text(record: dict) -> str:
    """A job's state in a few lines: status, then its label, progress, card or error."""
    lines = [f"job {record.get('id')}  {record.get('type')}  {record.get('status')}"]
    for name in ("created_at", "started_at", "finished_at"):
        if record.get(name):
            lines.append(f"  {name.replace('_', ' '):<12}{record[name]}")
    if record.get("progress"):
        lines.append("  " + progress_line(record["progress"]))
    result = record.get("result") or {}
    if record.get("type") == "predict" and result:
        if result.get("label") is None:
            lines.append(f"  no digit: {result.get('reason')}")
        else:
            lines.append(
                f"  label {result['label']}  confidence {result.get('confidence'):.4f}  "
                f"model version {result.get('model_version')}"
            )
    if record.get("type") == "train" and result.get("card"):
        lines.append(card_text(result["card"]))
    if record.get("error"):
        lines.append(f"  error: {_error_text(record['error'])}")
    return "\n".join(lines)
