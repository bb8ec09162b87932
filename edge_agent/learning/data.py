"""Fashion-MNIST: find, verify, download and load the official IDX files as normalised arrays (numpy only)."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
FILE_NAMES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

# SHA-256 of each file's IDX bytes after gunzip. They are taken over the content, not the .gz archive, because
# Debian's dataset-fashion-mnist recompresses the archives (so their hashes differ from the publisher's) while
# the content is the official one: these values come from archives matching the MD5 sums in the publisher's
# README (train-images 8d4fb7e6c68d591d4c3dfef9ec88bf0d, train-labels 25c81989df183df01b3e8a0aad5dffbe,
# t10k-images bef4ecab320f06d8554ea6380940ec79, t10k-labels bb300cfdad3c16e7a12a480ee83cd310).
CONTENT_SHA256 = {
    TRAIN_IMAGES: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    TRAIN_LABELS: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    TEST_IMAGES: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    TEST_LABELS: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}

# The publisher's two homes for the same archives, tried in this order.
MIRRORS = (
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
)

SYSTEM_DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
PIXEL_MEAN = 0.2860
PIXEL_STD = 0.3530
IMAGE_SIDE = 28
NUM_CLASSES = 10
TRAIN_SIZE = 60_000
TEST_SIZE = 10_000

_GZIP_MAGIC = b"\x1f\x8b"

_HOW_TO_GET = (
    "Get Fashion-MNIST with one of: `sudo apt-get install dataset-fashion-mnist`; "
    "or set EDGE_AGENT_DATA=/dir to a directory holding the four files; "
    "or run `edge-agent data download`."
)


class DataNotFoundError(Exception):
    """No directory searched holds all four Fashion-MNIST files; the message says how to get them."""

    def __init__(self, searched: Sequence[Path]) -> None:
        self.searched = tuple(searched)
        places = ", ".join(str(p) for p in self.searched)
        files = ", ".join(f"{name}[.gz]" for name in FILE_NAMES)
        super().__init__(f"Fashion-MNIST not found in {places} (need {files}). {_HOW_TO_GET}")


class DownloadError(OSError):
    """Every mirror failed to deliver a file with the expected content."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """Normalised images and their labels."""

    x: npt.NDArray[np.float32]  # (N, 784)
    y: npt.NDArray[np.int64]  # (N,)

    def __post_init__(self) -> None:
        if self.x.ndim != 2 or self.y.ndim != 1 or len(self.x) != len(self.y):
            raise ValueError(f"Dataset needs x (N, D) and y (N,), got {self.x.shape} and {self.y.shape}")

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, indices: npt.ArrayLike) -> Dataset:
        """The samples at `indices`, in that order."""
        idx = np.asarray(indices, dtype=np.int64)
        return Dataset(self.x[idx], self.y[idx])


def user_cache_dir() -> Path:
    """Where `download_dataset` puts the files by default: $XDG_CACHE_HOME (or ~/.cache)/edge-agent/fashion-mnist."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edge-agent" / "fashion-mnist"


def data_file(directory: Path, name: str) -> Path | None:
    """`directory/name.gz` or else `directory/name`, whichever exists; None if neither does."""
    for candidate in (directory / f"{name}.gz", directory / name):
        if candidate.is_file():
            return candidate
    return None


def has_all_files(directory: Path) -> bool:
    return all(data_file(directory, name) is not None for name in FILE_NAMES)


def candidate_dirs(explicit: Path | None = None) -> list[Path]:
    """Directories to search, in order. A directory the user named (argument, then $EDGE_AGENT_DATA) is final."""
    if explicit is not None:
        return [explicit]
    env = os.environ.get("EDGE_AGENT_DATA")
    if env:
        return [Path(env).expanduser()]
    return [SYSTEM_DATA_DIR, user_cache_dir()]


def find_data_dir(explicit: Path | None = None) -> Path:
    """The first candidate directory holding all four files; DataNotFoundError listing the places searched."""
    searched = candidate_dirs(explicit)
    for directory in searched:
        if has_all_files(directory):
            return directory
    raise DataNotFoundError(searched)


def read_raw(path: Path) -> bytes:
    """The IDX bytes of `path`, gunzipped when it is a gzip file (told by content, not name); ValueError if broken."""
    raw = path.read_bytes()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError) as err:
        raise ValueError(f"{path} is a broken gzip file ({err}); delete it and fetch it again") from err


def content_sha256(path: Path) -> str:
    """SHA-256 of the file's IDX bytes (gunzipped first if it is gzipped), comparable with CONTENT_SHA256."""
    return hashlib.sha256(read_raw(path)).hexdigest()


def normalise_images(images: npt.NDArray[np.generic]) -> npt.NDArray[np.float32]:
    """(N, 28, 28) uint8 -> (N, 784) float32: x/255, then (x - 0.2860)/0.3530 (float32 arithmetic)."""
    levels = np.arange(256, dtype=np.float32)
    table = (levels / np.float32(255.0) - np.float32(PIXEL_MEAN)) / np.float32(PIXEL_STD)  # (256,)
    normalised: npt.NDArray[np.float32] = table[images.reshape(len(images), -1)]  # (N, 784)
    return normalised


def read_uint8_idx(path: Path) -> npt.NDArray[np.uint8]:
    """The uint8 array of an IDX file (plain or gzipped), streamed into place: no copy of the file is held."""
    with path.open("rb") as probe:
        gzipped = probe.read(2) == _GZIP_MAGIC
    if not gzipped:
        with path.open("rb") as file:
            return _read_uint8_idx_stream(file, path)
    try:
        with gzip.open(path, "rb") as file:
            return _read_uint8_idx_stream(file, path)
    except (OSError, EOFError) as err:
        raise ValueError(f"{path} is a broken gzip file ({err}); delete it and fetch it again") from err


def _read_uint8_idx_stream(file: io.BufferedIOBase, path: Path) -> npt.NDArray[np.uint8]:
    magic = file.read(4)
    if len(magic) < 4 or magic[:3] != b"\x00\x00\x08" or magic[3] == 0:
        raise ValueError(f"{path} is not a uint8 IDX file (magic number {magic.hex()})")
    header = file.read(4 * magic[3])
    if len(header) < 4 * magic[3]:
        raise ValueError(f"{path}: the IDX header is truncated")
    shape = tuple(int.from_bytes(header[i : i + 4], "big") for i in range(0, len(header), 4))
    array = np.empty(shape, dtype=np.uint8)
    view, filled = array.data.cast("B"), 0
    while filled < array.size:  # 1 MiB at a time: one big read would hold a second copy while it is copied
        got = file.readinto(view[filled : filled + (1 << 20)])
        if not got:
            break
        filled += got
    if filled != array.size or file.read(1):
        raise ValueError(f"{path}: the header says shape {shape}, the data does not match it")
    return array


def load_uint8_split(directory: Path, images_name: str, labels_name: str, size: int
                     ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """One split as stored: images (size, 28, 28) uint8 and labels (size,) int64, shapes and label range checked.

    Streamed from the files, the 60,000 training images peak at 47 MB; a whole-file gunzip peaks near 130 MB.
    """
    images = read_uint8_idx(_existing_file(directory, images_name))
    labels = read_uint8_idx(_existing_file(directory, labels_name))
    if images.shape != (size, IMAGE_SIDE, IMAGE_SIDE):
        raise ValueError(f"{images_name} in {directory}: expected {size} uint8 28x28 images, got {images.shape}")
    if labels.shape != (size,) or int(labels.max()) >= NUM_CLASSES:
        raise ValueError(f"{labels_name} in {directory}: expected {size} uint8 labels 0..9")
    return images, labels.astype(np.int64)


def load_split(directory: Path, images_name: str, labels_name: str, size: int) -> Dataset:
    """One split (train or test) from its two files, normalised (see load_uint8_split for the checks)."""
    images, labels = load_uint8_split(directory, images_name, labels_name, size)
    return Dataset(normalise_images(images), labels)


def _existing_file(directory: Path, name: str) -> Path:
    path = data_file(directory, name)
    if path is None:
        raise DataNotFoundError([directory])
    return path


def load_fashion_mnist(data_dir: Path | None = None) -> tuple[Dataset, Dataset]:
    """(train, test): the 60,000 training and 10,000 test samples, normalised, from `find_data_dir(data_dir)`."""
    directory = find_data_dir(data_dir)
    train = load_split(directory, TRAIN_IMAGES, TRAIN_LABELS, TRAIN_SIZE)
    test = load_split(directory, TEST_IMAGES, TEST_LABELS, TEST_SIZE)
    return train, test


def split_validation(test: Dataset, seed: int) -> tuple[Dataset, Dataset]:
    """(validation, test): a seeded half/half split of the test set, each half in the original order."""
    order = np.random.default_rng(seed).permutation(len(test))
    half = len(test) // 2
    return test.subset(np.sort(order[:half])), test.subset(np.sort(order[half:]))


def verify_dir(directory: Path) -> dict[str, bool]:
    """For each of the four files in `directory`: does its content match CONTENT_SHA256 (False if missing)?"""
    result = {}
    for name in FILE_NAMES:
        path = data_file(directory, name)
        result[name] = path is not None and _content_matches(path, name)
    return result


def download_dataset(dest: Path, progress: Callable[[str, bool], None] | None = None) -> Path:
    """Fetch the four official archives into `dest` (kept if already valid), checking content SHA-256; `dest`.

    `progress(name, fetched)` is called before each file is fetched (True) or after it is found valid (False).
    """
    dest.mkdir(parents=True, exist_ok=True)
    for name in FILE_NAMES:
        target = dest / f"{name}.gz"
        if target.is_file() and _content_matches(target, name):
            if progress:
                progress(name, False)
            continue
        if progress:
            progress(name, True)
        _download_verified(name, target)
    return dest


def _content_matches(path: Path, name: str) -> bool:
    """Does `path` hold the official content of `name`? False, not an error, if it is broken or unreadable."""
    try:
        return content_sha256(path) == CONTENT_SHA256[name]
    except (ValueError, OSError):
        return False


def _download_verified(name: str, target: Path) -> None:
    """Download `name`.gz from the first mirror that serves the right content; write it atomically to `target`."""
    failures = []
    for mirror in MIRRORS:
        url = f"{mirror}{name}.gz"
        fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=target.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
            if _content_matches(tmp, name):
                os.replace(tmp, target)
                return
            failures.append(f"{url}: content SHA-256 does not match")
        except (urllib.error.URLError, OSError) as err:
            failures.append(f"{url}: {err}")
        finally:
            tmp.unlink(missing_ok=True)
    raise DownloadError(f"could not download {name}.gz: " + "; ".join(failures) + f". {_HOW_TO_GET}")
