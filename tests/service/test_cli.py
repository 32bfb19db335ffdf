"""The ``digits`` command as a user runs it: a real subprocess against a real stack (or none)."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from model.shipped import SHIPPED_CARD
from stack.redis_server import free_port
from tests.conftest import TINY_MODELS_SERVED, TOKEN, png_bytes
from tests.service.helpers import wait_for

DIGITS = Path(sys.executable).parent / "digits"
TINY_TRAINING = ["--arch", "seed", "--epochs", "1", "--train-limit", "2000", "--no-augment"]

SHIPPED_ARCH = json.loads(SHIPPED_CARD.read_text())["arch"]  # version 1, the shipped model, is listed first
STACK_ENV = TINY_MODELS_SERVED  # the versions trained here are activated

pytestmark = pytest.mark.slow


def digits(
    *args: str, server: str | None, token: str | None = None, timeout: float = 120, token_name="DIGITS_ADMIN_TOKEN"
):
    """Run ``digits ARGS`` with DIGITS_URL (and the token, as ``token_name``) set; return the finished process."""
    names = ("DIGITS_URL", "DIGITS_TOKEN", "DIGITS_ADMIN_TOKEN", "DIGITS_API_TOKEN")
    env = {k: v for k, v in os.environ.items() if k not in names}
    env |= {"DIGITS_URL": server} if server else {}
    env |= {token_name: token} if token else {}
    return subprocess.run([str(DIGITS), *args], env=env, capture_output=True, text=True, timeout=timeout)


def save_pngs(folder: Path, mnist, indices) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in indices:
        path = folder / f"test{i:05d}.png"
        path.write_bytes(png_bytes(mnist.x_test[i]))
        paths.append(path)
    return paths


def parse_lines(stdout: str) -> list[tuple[str, str, str]]:
    return [tuple(line.split("\t")) for line in stdout.splitlines()]


def test_predict_prints_path_label_and_confidence_for_mnist_pngs(stack, mnist, tmp_path):
    paths = save_pngs(tmp_path, mnist, range(5))

    run = digits("predict", *map(str, paths), server=stack.web_url)

    assert run.returncode == 0, run.stderr
    lines = parse_lines(run.stdout)
    assert [line[0] for line in lines] == [str(p) for p in paths]
    assert [int(line[1]) for line in lines] == [int(y) for y in mnist.y_test[:5]]
    assert all(0.5 < float(line[2]) <= 1 for line in lines)


def test_one_image_with_output_writes_just_the_digit(stack, mnist, tmp_path):
    (path,) = save_pngs(tmp_path, mnist, [1])
    output = tmp_path / "output.txt"

    run = digits("predict", str(path), "--output", str(output), server=stack.web_url)

    assert run.returncode == 0, run.stderr
    assert output.read_text() == str(mnist.y_test[1])


def test_local_gives_the_labels_the_service_gives(stack, mnist, tmp_path):
    folder = tmp_path / "fifty"
    save_pngs(folder, mnist, range(50))

    served = digits("predict", str(folder), server=stack.web_url)
    local = digits("predict", "--local", str(folder), server=f"http://127.0.0.1:{free_port()}", timeout=300)

    assert served.returncode == 0 and local.returncode == 0, (served.stderr, local.stderr)
    assert local.stderr == ""  # TensorFlow's start-up notes do not bury the answers
    served_lines, local_lines = parse_lines(served.stdout), parse_lines(local.stdout)
    assert len(served_lines) == 50
    assert [(path, label) for path, label, _ in local_lines] == [(path, label) for path, label, _ in served_lines]
    assert sum(int(label) == y for (_, label, _), y in zip(served_lines, mnist.y_test[:50], strict=True)) >= 48


def test_predict_against_a_service_never_imports_tensorflow(stack, mnist, tmp_path):
    (path,) = save_pngs(tmp_path, mnist, [0])
    script = (
        "import sys\n"
        "from client.cli import main\n"
        f"sys.argv = ['digits', 'predict', {str(path)!r}, '--json', '--server', {stack.web_url!r}]\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n"
        "print('imported', sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert '"label": 7' in run.stdout and "imported []" in run.stdout


def test_a_text_file_in_a_directory_gets_an_error_line_and_the_image_its_label(stack, mnist, tmp_path):
    save_pngs(tmp_path, mnist, [2])
    (tmp_path / "notes.txt").write_text("this is not a digit\n")

    run = digits("predict", str(tmp_path), server=stack.web_url)

    assert run.returncode == 1
    lines = dict((Path(path).name, (label, rest)) for path, label, rest in parse_lines(run.stdout))
    assert lines["test00002.png"][0] == str(mnist.y_test[2])
    assert lines["notes.txt"][0] == "-" and "not an image" in lines["notes.txt"][1]


def test_no_service_is_one_line_and_exit_2_within_seconds(mnist, tmp_path):
    (path,) = save_pngs(tmp_path, mnist, [0])
    url = f"http://127.0.0.1:{free_port()}"
    for command in (["predict", str(path)], ["models"]):
        started = time.monotonic()
        run = digits(*command, server=url, timeout=30)
        elapsed = time.monotonic() - started

        assert run.returncode == 2, run
        assert run.stdout == "" and len(run.stderr.splitlines()) == 1, run.stderr
        assert url in run.stderr and "make run" in run.stderr
        assert elapsed < 5


def test_server_option_before_or_after_the_command_overrides_digits_url(stack):
    dead = f"http://127.0.0.1:{free_port()}"
    before = digits("--server", stack.web_url, "models", server=dead)
    after = digits("models", "--server", stack.web_url, server=dead)
    nearest_wins = digits("--server", dead, "models", "--server", stack.web_url, server=None)

    for run in (before, after, nearest_wins):
        assert run.returncode == 0 and re.search(rf"^\*\s+\d+\s+{SHIPPED_ARCH}", run.stdout, re.MULTILINE), run


def test_training_without_the_token_says_how_to_get_one(stack):
    run = digits("train", *TINY_TRAINING, server=stack.web_url)
    assert run.returncode == 1 and "DIGITS_ADMIN_TOKEN" in run.stderr


@pytest.mark.parametrize("old_name", ["DIGITS_TOKEN", "DIGITS_API_TOKEN"])
def test_the_old_token_names_still_work_with_a_deprecation_note(stack, old_name):
    taken = digits("activate", "99", server=stack.web_url, token=TOKEN, token_name=old_name)
    assert f"{old_name} is deprecated; set DIGITS_ADMIN_TOKEN instead" in taken.stderr, taken.stderr
    assert taken.returncode == 1 and "set DIGITS_ADMIN_TOKEN to the token" not in taken.stderr  # a 404, not a 401
    refused = digits("activate", "99", server=stack.web_url, token="wrong", token_name=old_name)
    assert "set DIGITS_ADMIN_TOKEN to the token" in refused.stderr, refused.stderr


def test_train_wait_shows_progress_then_the_card_and_the_version_can_be_activated(stack):
    run = digits("train", *TINY_TRAINING, "--wait", server=stack.web_url, token=TOKEN, timeout=300)

    assert run.returncode == 0, run.stderr
    assert re.search(r"epoch 1/1 \[#+\] batch (\d+)/\1  loss \d\.\d{4}  accuracy \d\.\d{4}", run.stderr), run.stderr
    assert "ETA" in run.stderr
    version = int(re.search(r"^model version (\d+)", run.stdout, re.MULTILINE).group(1))
    assert re.search(r"test accuracy\s+\d+\.\d\d %", run.stdout)
    assert re.search(r"arch\s+seed", run.stdout) and "history" in run.stdout
    assert "confusion" not in run.stdout and "mistakes" not in run.stdout
    card = requests.get(f"{stack.web_url}/api/v1/models/{version}", timeout=10).json()
    assert card["arch"] == "seed" and f"{card['test_accuracy'] * 100:.2f} %" in run.stdout

    activated = digits("activate", str(version), server=stack.web_url, token=TOKEN)
    listing = digits("models", server=stack.web_url)
    restored = digits("activate", "1", server=stack.web_url, token=TOKEN)

    assert activated.returncode == 0 and f"model version {version} is now active" in activated.stdout
    assert re.search(rf"^\*\s+{version}\s+seed", listing.stdout, re.MULTILINE), listing.stdout
    assert restored.returncode == 0


def test_train_activate_if_better_keeps_the_better_active_model(stack):
    before = requests.get(f"{stack.web_url}/api/v1/models", timeout=10).json()["active_version"]

    run = digits("train", *TINY_TRAINING, "--activate", "if-better", "--wait", server=stack.web_url, token=TOKEN)

    assert run.returncode == 0, run.stderr
    version = int(re.search(r"^model version (\d+)", run.stdout, re.MULTILINE).group(1))
    assert re.search(rf"not activated: its test accuracy [0-9.]+% does not beat version {before}'s", run.stdout)
    assert requests.get(f"{stack.web_url}/api/v1/models", timeout=10).json()["active_version"] == before != version


def test_train_refuses_an_unknown_activation_policy_before_sending(stack):
    run = digits("train", *TINY_TRAINING, "--activate", "sometimes", server=stack.web_url, token=TOKEN)
    assert run.returncode == 2 and "'sometimes' is not one of" in run.stderr, run.stderr


def test_ctrl_c_while_waiting_leaves_the_job_running_and_prints_its_id(stack):
    env = {**os.environ, "DIGITS_URL": stack.web_url, "DIGITS_ADMIN_TOKEN": TOKEN}  # the server's own name works
    command = [str(DIGITS), "train", "--arch", "seed", "--epochs", "5", "--train-limit", "2000", "--wait"]
    # As at a terminal: SIGINT raises KeyboardInterrupt even if this test runs with it ignored.
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        first_line = read_line(process.stderr, timeout=30)
        job_id = re.search(r"training job ([0-9a-f]{32}) submitted", first_line).group(1)
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=30)
    finally:
        process.kill()

    assert process.returncode == 130
    assert "left running" in rest and rest.strip().splitlines()[-1] == job_id
    record = requests.get(f"{stack.web_url}/api/v1/jobs/{job_id}", timeout=10).json()
    assert record["status"] in ("queued", "running"), record
    shown = digits("job", job_id, server=stack.web_url)
    assert shown.returncode == 0 and re.search(rf"job {job_id}  train  (queued|running)", shown.stdout), shown.stdout
    # Free the test worker for the tests after this one.
    requests.delete(f"{stack.web_url}/api/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert wait_for(stack.web_url, job_id, timeout=120)["status"] == "cancelled"


def read_line(stream, timeout: float) -> str:
    """The next line of a subprocess's pipe, or fail the test after ``timeout`` seconds."""
    ready, _, _ = select.select([stream], [], [], timeout)
    assert ready, f"no output within {timeout} s"
    return stream.readline()
