"""NVIDIA's perf_analyzer, Triton's own load tool, against the service, unchanged.

    python -m bench.perf_analyzer      # about a minute: installs the tool once, starts a private stack

perf_analyzer reads the model's metadata and configuration, then sends genuine MNIST digits over
the Open Inference Protocol: 28x28 pixels in requests of 64, and PNG files one per request, at a
few concurrency levels, over HTTP and gRPC, and prints what it measured. The service is the same
as ``make bench``'s (a private redis-server, gunicorn, two solo predict workers on LiteRT), with
the gRPC server.

The tool is a Linux x86-64 program that PyPI carries inside older tritonclient wheels such as 2.34's
(today's leave it out). It is taken from there into ``var/tools/perf_analyzer/`` with the CUDA
runtime library it links (it runs on the CPU all the same); it also needs Debian's ``libb64-0d``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import re
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import redis

from bench.load import png

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "var" / "tools" / "perf_analyzer"
WHEEL = "tritonclient==2.34.0"
CUDA_RUNTIME = "nvidia-cuda-runtime-cu12==12.*"


class Unavailable(RuntimeError):
    """perf_analyzer cannot run on this machine; the message says what is missing."""


def install(into: Path = TOOLS) -> tuple[Path, dict[str, str]]:
    """The perf_analyzer program and the environment it runs in, fetched from PyPI on first use."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        raise Unavailable(f"perf_analyzer is built for Linux x86-64, not {sys.platform} {platform.machine()}")
    program, libraries = into / "perf_analyzer", into / "cuda"
    if not program.exists():
        into.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as download:
            pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
            subprocess.run([*pip, "download", WHEEL, "--no-deps", "-d", download], check=True)
            subprocess.run([*pip, "install", CUDA_RUNTIME, "--no-deps", "--target", str(libraries)], check=True)
            [wheel] = Path(download).glob("tritonclient-*.whl")
            with zipfile.ZipFile(wheel) as archive:
                name = next(n for n in archive.namelist() if n.endswith("/bin/perf_analyzer"))
                (into / "perf_analyzer.part").write_bytes(archive.read(name))
        (into / "perf_analyzer.part").chmod(0o755)
        (into / "perf_analyzer.part").rename(program)
    runtime = next(libraries.glob("**/libcudart.so.12"), None)
    env = {**os.environ, "LD_LIBRARY_PATH": str(runtime.parent) if runtime else ""}
    linked = subprocess.run(["ldd", str(program)], capture_output=True, text=True, env=env).stdout
    missing = re.findall(r"^\s*(\S+) => not found", linked, re.MULTILINE)
    if missing:
        raise Unavailable(f"perf_analyzer needs {', '.join(missing)} (libb64.so.0d: apt-get install libb64-0d)")
    return program, env


def pixels_data(digits: np.ndarray, per_request: int) -> dict:
    """perf_analyzer's --input-data: requests of ``per_request`` 28x28 digits as the input pixels."""
    chunks = [digits[n : n + per_request] for n in range(0, len(digits) - per_request + 1, per_request)]
    return {"data": [{"pixels": {"content": c.ravel().tolist(), "shape": list(c.shape)}} for c in chunks]}


def image_data(digits: np.ndarray) -> dict:
    """perf_analyzer's --input-data: one PNG file per request as the input image. Its base64 holds
    the tensor's raw bytes, which for BYTES is each element's 4-byte length, then the element."""
    files = [png(digit) for digit in digits]
    raw = [base64.b64encode(struct.pack("<I", len(f)) + f).decode() for f in files]
    return {"data": [{"image": {"content": {"b64": r}, "shape": [1]}} for r in raw]}


def run(
    program: Path, env: dict, address: str, data: dict, concurrency: int, window_ms: int = 3000, protocol: str = "http",
    stable_percent: int = 25,
) -> dict:  # fmt: skip
    """One perf_analyzer run at ``concurrency`` over ``protocol`` (http: the web's address; grpc:
    the gRPC server's): its exit status, its output and the figures read from it. Three windows
    within ``stable_percent`` of one another count as stable."""
    with tempfile.NamedTemporaryFile("w", suffix=".json") as file:
        json.dump(data, file)
        file.flush()
        options = {"--concurrency-range": concurrency, "-p": window_ms, "--max-trials": 6, "-s": stable_percent}
        command = [str(program), "-m", "digits", "-u", address, "-i", protocol, "--input-data", file.name]
        command += [str(part) for option in options.items() for part in option]
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)

    def figure(pattern: str) -> float | None:
        found = re.search(pattern, done.stdout)
        return float(found.group(1)) if found else None

    return {
        "returncode": done.returncode,
        "output": done.stdout + done.stderr,
        "requests": figure(r"Request count: (\d+)"),
        "requests_per_s": figure(r"Throughput: ([\d.]+) infer/sec"),
        "p50_ms": (figure(r"p50 latency: (\d+) usec") or 0) / 1000,
        "p99_ms": (figure(r"p99 latency: (\d+) usec") or 0) / 1000,
    }


def main(argv: list[str] | None = None) -> int:
    from bench.__main__ import in_process_limit, start_workers
    from model.mnist import load_mnist
    from settings import get_settings
    from stack.processes import Stack
    from stack.redis_server import RedisServer

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2, help="predict worker processes")
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args = parser.parse_args(argv)
    try:
        program, env = install()
    except Unavailable as exc:
        print(f"perf_analyzer cannot run here: {exc}", file=sys.stderr)
        return 1
    digits = load_mnist(get_settings().mnist_dir).x_test[:1024]
    limit = in_process_limit("litert", digits[:256].astype(np.float32) / 255)
    server = RedisServer().start()
    stack = Stack(server.url, args.out / "logs", env={"RATE_LIMIT": ""})
    try:
        stack.start_web(workers=2)
        threads = {"TF_INTRA_OP_THREADS": "1", "TF_INTER_OP_THREADS": "1"}
        start_workers(stack, args.workers, threads, redis.Redis.from_url(server.url))
        addresses = {"http": stack.web_url.split("//", 1)[1], "grpc": stack.start_grpc()}
        print(f"perf_analyzer ({WHEEL}) against {args.workers} predict worker(s), genuine MNIST test digits")
        print(f"in-process limit (LiteRT, batches of 256): {limit:.0f} images/s\n")
        print(f"{'input':<28} {'protocol':>8} {'concurrency':>11} {'requests/s':>10} {'images/s':>9} {'of limit':>8}"
              f" {'p50 ms':>8} {'p99 ms':>8}")  # fmt: skip
        for name, data, per_request, levels in (
            ("pixels, 64 per request", pixels_data(digits, 64), 64, (("http", 4), ("http", 16), ("grpc", 16))),
            ("image (PNG), 1 per request", image_data(digits[:256]), 1, (("http", 1), ("http", 32), ("grpc", 32))),
        ):
            for protocol, concurrency in levels:
                figures = run(program, env, addresses[protocol], data, concurrency, protocol=protocol)
                if figures["returncode"] != 0 or figures["requests_per_s"] is None:
                    print(figures["output"], file=sys.stderr)
                    return 1
                rate = figures["requests_per_s"]
                images = rate * per_request
                print(f"{name:<28} {protocol:>8} {concurrency:>11} {rate:>10.1f} {images:>9.0f} {images / limit:>8.1%}"
                      f" {figures['p50_ms']:>8.1f} {figures['p99_ms']:>8.1f}")  # fmt: skip
    finally:
        stack.stop_all()
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
