"""MNIST loading from IDX files (gzip or plain) and mnist.npz, with errors that name the file."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest

from model.idx import DataError, read_idx
from model.mnist import FILES, load_mnist


def test_loads_the_genuine_files(mnist):
    assert mnist.x_train.shape == (60000, 28, 28) and mnist.x_train.dtype == np.uint8
    assert mnist.y_train.shape == (60000,)
    assert mnist.x_test.shape == (10000, 28, 28)
    assert mnist.y_test.shape == (10000,)
    assert set(np.unique(mnist.y_test)) == set(range(10))
    assert mnist.y_test[:5].tolist() == [7, 2, 1, 0, 4]  # the well-known first test labels


def test_checksum_identifies_the_data(mnist):
    assert mnist.checksum() == mnist.checksum()
    assert mnist.checksum().startswith("sha256:")


def _small_copy(mnist, directory, gzipped: bool):
    """Write a 100/50-image MNIST in IDX format, as the original files are laid out."""
    arrays = {"x_train": mnist.x_train[:100], "y_train": mnist.y_train[:100],
              "x_test": mnist.x_test[:50], "y_test": mnist.y_test[:50]}  # fmt: skip
    for key, stem in FILES.items():
        array = arrays[key]
        header = (2051 if array.ndim == 3 else 2049).to_bytes(4, "big") + len(array).to_bytes(4, "big")
        if array.ndim == 3:
            header += (28).to_bytes(4, "big") * 2
        data = header + array.tobytes()
        if gzipped:
            (directory / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / stem).write_bytes(data)
    return arrays


@pytest.mark.parametrize("gzipped", [True, False])
def test_reads_idx_gzip_or_plain(mnist, tmp_path, gzipped):
    arrays = _small_copy(mnist, tmp_path, gzipped)
    loaded = load_mnist(tmp_path)
    assert np.array_equal(loaded.x_train, arrays["x_train"])
    assert np.array_equal(loaded.y_test, arrays["y_test"])


def test_reads_keras_npz(mnist, tmp_path):
    np.savez(tmp_path / "mnist.npz", x_train=mnist.x_train[:10], y_train=mnist.y_train[:10],
             x_test=mnist.x_test[:5], y_test=mnist.y_test[:5])  # fmt: skip
    loaded = load_mnist(tmp_path)
    assert loaded.x_train.shape == (10, 28, 28) and loaded.y_test.tolist() == mnist.y_test[:5].tolist()


def test_missing_file_is_named(mnist, tmp_path):
    _small_copy(mnist, tmp_path, gzipped=True)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        load_mnist(tmp_path)


def test_truncated_file_is_named(mnist, tmp_path):
    _small_copy(mnist, tmp_path, gzipped=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataError, match="train-images-idx3-ubyte.*bytes, expected"):
        load_mnist(tmp_path)


def test_corrupt_gzip_and_bad_magic_are_named(tmp_path):
    broken = tmp_path / "train-labels-idx1-ubyte.gz"
    broken.write_bytes(b"\x1f\x8b" + b"garbage" * 10)
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz: cannot be read"):
        read_idx(broken)
    wrong = tmp_path / "labels"
    wrong.write_bytes((1234).to_bytes(4, "big") + (0).to_bytes(4, "big"))
    with pytest.raises(DataError, match="bad magic number 1234"):
        read_idx(wrong)


def test_missing_directory_is_named(tmp_path):
    with pytest.raises(DataError, match="nowhere"):
        load_mnist(tmp_path / "nowhere")


def test_shared_copy_reads_via_mnist_dir(environ, tmp_path, mnist):
    from settings import get_settings

    copy = tmp_path / "copy"
    shutil.copytree(mnist.source, copy)
    environ.setenv("MNIST_DIR", str(copy))
    assert load_mnist(get_settings().mnist_dir).source == str(copy)
