"""Word-level corpora for language modelling, prepared without TensorFlow.

A corpus is three token-id streams (train, valid, test) over one vocabulary, built as the DARTS
and AWD-LSTM code builds them (`rnn/data.py`): every line is split on whitespace and ends in an
`<eos>` token; the vocabulary is every token in order of first appearance over train, then valid,
then test. `batchify` folds a stream into B columns, `(T, B)`, and a BPTT window of it is
`(stream[i:i+L], stream[i+1:i+1+L])`.

- `pydoc` (the offline default): Python's own documentation topics (`pydoc_data.topics`, PSF
  licence; they ship with every Python), normalised as Mikolov's PTB is (lower case, numbers as
  `N`, punctuation split off, blank lines and headings' underlines dropped, tokens outside the
  2,000 most frequent of train as `<unk>`) and split by lines, 80/10/10, in order. Its text
  changes between Python versions (3.11: about 65,000 words; 3.13: 70,000): compare runs on one
  Python.
- `ptb`: Penn Treebank as Mikolov prepared it (`simple-examples.tgz`; LDC licence: jaxnas never
  ships it, and the archive's members are checked by MD5).
- `wikitext2`: WikiText-2 (Merity et al., 2016; CC BY-SA), `wikitext-2-v1.zip`, MD5-checked.

Prepared corpora are kept in `<data_dir>/jaxnas_text/<name>/` (`vocab.txt`, `{train,valid,test}.npy`),
written to a temporary folder and renamed, so a killed preparation leaves nothing half-written.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import io
import os
import re
import shutil
import tarfile
import tempfile
import zipfile

import numpy as np
from absl import logging

from jaxnas.data.download import by_hand, filename_of, find_or_download
from jaxnas.data.errors import DataError

EOS, UNK = "<eos>", "<unk>"
SPLITS = ("train", "valid", "test")


@dataclasses.dataclass(frozen=True)
class Corpus:
    """Three int32 token streams over `vocab` (id = position in it)."""

    name: str
    vocab: tuple[str, ...]
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def split(self, name: str) -> np.ndarray:
        return {"train": self.train, "valid": self.valid, "test": self.test}[name]


def line_tokens(lines) -> list[str]:
    """Every line's whitespace-separated tokens and an `<eos>` (a blank line is just `<eos>`)."""
    return [token for line in lines for token in (*line.split(), EOS)]


def build_corpus(name: str, splits: dict[str, list[str]]) -> Corpus:
    """The corpus of three splits of text lines: the vocabulary in order of first appearance over
    train, valid and test, then each split's ids."""
    tokens = {split: line_tokens(splits[split]) for split in SPLITS}
    index: dict[str, int] = {}
    for split in SPLITS:
        for token in tokens[split]:
            index.setdefault(token, len(index))
    ids = {split: np.fromiter((index[t] for t in tokens[split]), np.int32, len(tokens[split])) for split in SPLITS}
    return Corpus(name, tuple(index), ids["train"], ids["valid"], ids["test"])


def batchify(stream: np.ndarray, batch_size: int) -> np.ndarray:
    """The stream as `(T, batch_size)`: column b is the b-th of `batch_size` equal consecutive parts
    (the tail that does not fill a row is dropped), so row t holds each column's t-th token."""
    steps = len(stream) // batch_size
    if steps < 2:
        raise DataError(f"a stream of {len(stream)} tokens is too short for batch size {batch_size}")
    return np.ascontiguousarray(stream[: steps * batch_size].reshape(batch_size, steps).T)


def window(stream: np.ndarray, start: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs `stream[start:start+length]` and their next tokens, `(length, B)` each."""
    return stream[start:start + length], stream[start + 1:start + 1 + length]


# --- the offline default: Python's documentation topics ---

PYDOC_VOCAB = 2000  # the most frequent tokens of train kept; the rest become <unk>
_TOKEN = re.compile(r"[a-z]+|[0-9]+(?:\.[0-9]+)?|[^\sa-z0-9]")


_RULE = re.compile(r"\s*([^\w\s])\1{2,}\s*")  # a heading's underline: "*****", "-----"


def _normalise(line: str) -> str:
    if _RULE.fullmatch(line):
        return ""
    return " ".join("N" if t[0].isdigit() else t for t in _TOKEN.findall(line.lower()))


def pydoc_splits(vocab_size: int = PYDOC_VOCAB) -> dict[str, list[str]]:
    """`pydoc_data.topics` as PTB-like lines, split 80/10/10 by lines in topic order."""
    from pydoc_data.topics import topics

    lines = [n for key in sorted(topics) for line in topics[key].splitlines() if (n := _normalise(line))]
    a, b = int(0.8 * len(lines)), int(0.9 * len(lines))
    splits = {"train": lines[:a], "valid": lines[a:b], "test": lines[b:]}
    counts = collections.Counter(t for line in splits["train"] for t in line.split())
    keep = {t for t, _ in sorted(counts.items(), key=lambda kv: -kv[1])[:vocab_size]}  # stable: first seen wins ties
    return {split: [" ".join(t if t in keep else UNK for t in line.split()) for line in lines]
            for split, lines in splits.items()}


# --- archives: PTB and WikiText-2 ---

@dataclasses.dataclass(frozen=True)
class TextArchive:
    """An official archive: where it is, its MD5 (or "" where only its members' are known), and the
    member file of each split with that file's MD5 (or "")."""

    url: str
    md5: str
    members: dict  # split -> (path inside the archive, MD5 of that file or "")
    licence: str

    @property
    def filename(self) -> str:
        return filename_of(self.url)


PTB = TextArchive(
    "http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz", "",
    {"train": ("simple-examples/data/ptb.train.txt", "f26c4b92c5fdc7b3f8c7cdcb991d8420"),
     "valid": ("simple-examples/data/ptb.valid.txt", "aa0affc06ff7c36e977d7cd49e3839bf"),
     "test": ("simple-examples/data/ptb.test.txt", "8b80168b89c18661a38ef683c0dc3721")},
    "LDC (Penn Treebank): not redistributable; jaxnas downloads it from Mikolov's page and never ships it")
WIKITEXT2 = TextArchive(
    "https://wikitext.smerity.com/wikitext-2-v1.zip", "542ccefacc6c27f945fb54453812b3cd",
    {"train": ("wikitext-2/wiki.train.tokens", ""), "valid": ("wikitext-2/wiki.valid.tokens", ""),
     "test": ("wikitext-2/wiki.test.tokens", "")},
    "CC BY-SA 3.0 (Merity et al., 2016)")
ARCHIVES = {"ptb": PTB, "wikitext2": WIKITEXT2}
CORPORA = ("pydoc", *ARCHIVES)
# Vocabulary sizes of the archives' corpora as `build_corpus` makes them (<eos> included), known
# without the data: what a benchmark of a step at the real size needs.
KNOWN_VOCAB_SIZES = {"ptb": 10_000, "wikitext2": 33_278}


def vocab_size(name: str, data_dir: str = "") -> int:
    """The vocabulary size of corpus `name`, without downloading anything."""
    check_corpus(name)
    return KNOWN_VOCAB_SIZES[name] if name in KNOWN_VOCAB_SIZES else load_corpus(name, data_dir).vocab_size


def _read_members(path: str, archive: TextArchive) -> dict[str, bytes]:
    """Each split's file from the tar or zip archive at `path`, MD5-checked where known."""
    wanted = {member: split for split, (member, _) in archive.members.items()}
    found: dict[str, bytes] = {}
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                for info in z.infolist():
                    if info.filename.removeprefix("./") in wanted:
                        found[wanted[info.filename.removeprefix("./")]] = z.read(info)
        else:
            with tarfile.open(path, "r:*") as tar:
                for info in tar:
                    if info.isfile() and info.name.removeprefix("./") in wanted:
                        found[wanted[info.name.removeprefix("./")]] = tar.extractfile(info).read()
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as e:
        raise DataError(f"{path} is not a readable archive ({type(e).__name__}: {str(e)[:80]}); delete it and run "
                        f"again to download it, or {by_hand(archive, os.path.dirname(path))}") from None
    missing = [archive.members[s][0] for s in SPLITS if s not in found]
    if missing:
        raise DataError(f"{path} lacks {', '.join(missing)}; delete it and run again to download it, or "
                        f"{by_hand(archive, os.path.dirname(path))}")
    for split, (member, digest) in archive.members.items():
        if digest and _md5_bytes(found[split]) != digest:
            raise DataError(f"{member} in {path} is damaged (MD5 mismatch); delete the archive and run again, or "
                            f"{by_hand(archive, os.path.dirname(path))}")
    return found


def _md5_bytes(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _archive_splits(path: str, archive: TextArchive) -> dict[str, list[str]]:
    members = _read_members(path, archive)
    return {split: io.TextIOWrapper(io.BytesIO(members[split]), encoding="utf-8").read().splitlines()
            for split in SPLITS}


def default_data_dir() -> str:
    """TFDS's default data folder, where the image sets live too (no TensorFlow or TFDS import)."""
    return os.environ.get("TFDS_DATA_DIR", os.path.join(os.path.expanduser("~"), "tensorflow_datasets"))


def corpus_dir(name: str, data_dir: str = "") -> str:
    return os.path.join(os.path.expanduser(data_dir or default_data_dir()), "jaxnas_text", name)


def check_corpus(name: str) -> None:
    if name not in CORPORA:
        raise DataError(f"unknown text corpus {name!r}; valid corpora: {', '.join(CORPORA)}")


def load_corpus(name: str, data_dir: str = "") -> Corpus:
    """The corpus `name` (`CORPORA`), prepared once into `corpus_dir(name, data_dir)` from its archive
    (downloaded, or found where it was put by hand); `pydoc` is built in memory."""
    check_corpus(name)
    if name == "pydoc":
        return build_corpus(name, pydoc_splits())
    folder = corpus_dir(name, data_dir)
    if not os.path.isfile(os.path.join(folder, "vocab.txt")):
        _prepare(name, ARCHIVES[name], folder)
    try:
        with open(os.path.join(folder, "vocab.txt"), encoding="utf-8") as f:
            vocab = tuple(f.read().split("\n")[:-1])
        streams = {split: np.load(os.path.join(folder, f"{split}.npy")) for split in SPLITS}
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise DataError(f"the prepared corpus in {folder} is damaged ({type(e).__name__}); delete that folder and "
                        "run again") from None
    if any(s.dtype != np.int32 or s.ndim != 1 or (len(s) and s.max() >= len(vocab)) for s in streams.values()):
        raise DataError(f"the prepared corpus in {folder} does not match its vocab.txt; delete that folder and "
                        "run again")
    return Corpus(name, vocab, streams["train"], streams["valid"], streams["test"])


def _prepare(name: str, archive: TextArchive, folder: str) -> None:
    download_dir = os.path.join(os.path.dirname(os.path.dirname(folder)), "downloads")
    made = [p for p in (os.path.dirname(os.path.dirname(folder)), download_dir) if not os.path.isdir(p)]
    logging.info("preparing %s in %s (once)", name, folder)
    try:
        corpus = build_corpus(name, _archive_splits(find_or_download(archive, download_dir), archive))
    except Exception:
        for path in reversed(made):  # a failed preparation leaves no empty folders
            if os.path.isdir(path) and not any(files for _, _, files in os.walk(path)):
                shutil.rmtree(path)
        raise
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=f".{name}-", dir=os.path.dirname(folder))
    try:
        for split in SPLITS:
            np.save(os.path.join(scratch, f"{split}.npy"), corpus.split(split))
        with open(os.path.join(scratch, "vocab.txt"), "w", encoding="utf-8") as f:
            f.write("".join(f"{token}\n" for token in corpus.vocab))
        try:
            os.rename(scratch, folder)
        except OSError:  # another process (a host sharing this disk) prepared it first
            if not os.path.isfile(os.path.join(folder, "vocab.txt")):
                raise
    finally:
        if os.path.isdir(scratch):
            shutil.rmtree(scratch)
    logging.info("%s: %d words in the vocabulary; %d / %d / %d tokens", name, corpus.vocab_size, len(corpus.train),
                 len(corpus.valid), len(corpus.test))
