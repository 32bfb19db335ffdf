"""The corrections as MNIST's IDX files, each gzip-compressed, in one tar: streamed, never held.

The corrections are read from Redis a page at a time into spooled temporary files (in memory up to
``SPOOL_BYTES``, on disk beyond), so a web process never holds them all; a tar names each member's
size before its bytes, so each member is compressed (at level 1: cheap, and the digits compress
almost as well as at 9) before the archive streams out in chunks. Between pages and chunks the
process lets others run: under gunicorn's gevent workers ``time.sleep(0)`` yields to them.
"""

from __future__ import annotations

import contextlib
import gzip
import tarfile
import time
from collections.abc import Iterable, Iterator
from tempfile import SpooledTemporaryFile
from typing import IO

from jobs.feedback import Examples
from model.idx import ROWS, idx_header

IMAGES = "feedback-images-idx3-ubyte.gz"
LABELS = "feedback-labels-idx1-ubyte.gz"  # the digits given
PREDICTED = "feedback-predicted-idx1-ubyte.gz"  # the digits the model said
SPOOL_BYTES = 1024 * 1024
CHUNK_BYTES = 64 * 1024
COMPRESS_LEVEL = 1
BLOCK = tarfile.BLOCKSIZE


def archive(pages: Iterable[Examples]) -> Iterator[bytes]:
    """The tar, chunk by chunk, of the corrections in ``pages`` (in their order). The files are
    closed (and removed) when the archive is done, or when the client goes away mid-way."""
    with contextlib.ExitStack() as files:
        raw = {name: files.enter_context(SpooledTemporaryFile(SPOOL_BYTES)) for name in (IMAGES, LABELS, PREDICTED)}
        count = 0
        for page in pages:
            raw[IMAGES].write(page.images.tobytes())
            raw[LABELS].write(page.labels.tobytes())
            raw[PREDICTED].write(page.predicted.tobytes())
            count += len(page)
            time.sleep(0)
        shapes = {IMAGES: (count, ROWS, ROWS), LABELS: (count,), PREDICTED: (count,)}
        size = 0
        for name, data in raw.items():
            packed = files.enter_context(SpooledTemporaryFile(SPOOL_BYTES))
            _compress(idx_header(shapes[name]), data, packed)
            data.close()
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = packed.tell(), 0, 0o644
            header = info.tobuf(tarfile.USTAR_FORMAT)
            yield header
            yield from _chunks(packed)
            packed.close()
            padding = -info.size % BLOCK
            yield b"\0" * padding
            size += len(header) + info.size + padding
    end = 2 * BLOCK
    yield b"\0" * (end + -(size + end) % tarfile.RECORDSIZE)  # the end-of-archive blocks, as tarfile writes them


def _compress(header: bytes, data: IO[bytes], packed: IO[bytes]) -> None:
    with gzip.GzipFile(filename="", fileobj=packed, mode="wb", compresslevel=COMPRESS_LEVEL, mtime=0) as gz:
        gz.write(header)
        for chunk in _chunks(data):
            gz.write(chunk)


def _chunks(file: IO[bytes]) -> Iterator[bytes]:
    file.seek(0)
    while chunk := file.read(CHUNK_BYTES):
        yield chunk
        time.sleep(0)
