"""Word-level corpora without TensorFlow: tokenisation and vocabulary as the DARTS code builds them,
(T, B) streams and BPTT windows against loops written here, the offline pydoc corpus, and PTB and
WikiText-2 prepared from fake archives in the official layouts; damaged archives and a missing
network are one line and leave nothing behind."""

import dataclasses
import hashlib
import importlib.util
import io
import tarfile
import zipfile

import numpy as np
import pytest

from jaxnas.data import download, text
from jaxnas.data.errors import DataError


def test_tensorflow_is_absent():
    assert importlib.util.find_spec("tensorflow") is None


def test_vocabulary_in_order_of_first_appearance_over_train_valid_test():
    corpus = text.build_corpus("hand", {"train": ["a b", "", "b c"], "valid": ["d a"], "test": ["e"]})
    assert corpus.vocab == ("a", "b", "<eos>", "c", "d", "e")
    np.testing.assert_array_equal(corpus.train, [0, 1, 2, 2, 1, 3, 2])  # a blank line is one <eos>
    np.testing.assert_array_equal(corpus.valid, [4, 0, 2])
    np.testing.assert_array_equal(corpus.test, [5, 2])
    assert corpus.train.dtype == np.int32


def test_batchify_and_windows_against_a_loop():
    stream = np.arange(23, dtype=np.int32)
    folded = text.batchify(stream, 4)
    steps = 23 // 4
    assert folded.shape == (steps, 4)
    for b in range(4):
        for t in range(steps):
            assert folded[t, b] == stream[b * steps + t]
    x, y = text.window(folded, 1, 3)
    np.testing.assert_array_equal(x, folded[1:4])
    np.testing.assert_array_equal(y, folded[2:5])
    with pytest.raises(DataError, match="too short for batch size 16"):
        text.batchify(stream, 16)


def test_pydoc_corpus_is_deterministic_and_ptb_like():
    a, b = text.load_corpus("pydoc"), text.load_corpus("pydoc")
    assert a.vocab == b.vocab and all(np.array_equal(a.split(s), b.split(s)) for s in text.SPLITS)
    assert a.vocab_size <= text.PYDOC_VOCAB + 2 and "<unk>" in a.vocab and "<eos>" in a.vocab
    assert all(t == t.lower() for t in a.vocab if t not in ("N", "<unk>", "<eos>"))
    n = len(a.train) + len(a.valid) + len(a.test)
    assert 100_000 < n and 0.75 < len(a.train) / n < 0.85 and len(a.valid) > 8_000 and len(a.test) > 8_000
    assert a.vocab[int(a.train[-1])] == "<eos>"


LINES = {"train": ["the cat sat", "on the mat"], "valid": ["a dog"], "test": ["the end", ""]}


def _members(archive):
    return {archive.members[s][0]: "".join(f"{line}\n" for line in LINES[s]).encode() for s in text.SPLITS}


def _fake(archive, data_dir, prefix=""):
    """A fake archive of `archive`'s layout at <data_dir>/downloads/manual/; the spec with its MD5s."""
    path = data_dir / "downloads" / "manual" / archive.filename
    path.parent.mkdir(parents=True)
    members = _members(archive)
    if archive.filename.endswith(".zip"):
        with zipfile.ZipFile(path, "w") as z:
            for name, data in members.items():
                z.writestr(prefix + name, data)
    else:
        with tarfile.open(path, "w:gz") as tar:
            for name, data in members.items():
                info = tarfile.TarInfo(prefix + name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    digests = {s: (m, hashlib.md5(members[m]).hexdigest()) for s, (m, _) in archive.members.items()}
    return path, dataclasses.replace(archive, md5="", members=digests)


@pytest.mark.parametrize("name,prefix", [("ptb", "./"), ("wikitext2", "")])
def test_archive_is_prepared_once_in_the_official_layout(name, prefix, tmp_path, monkeypatch):
    path, spec = _fake(text.ARCHIVES[name], tmp_path, prefix)
    monkeypatch.setitem(text.ARCHIVES, name, spec)
    corpus = text.load_corpus(name, str(tmp_path))
    expected = text.build_corpus(name, LINES)
    assert corpus.vocab == expected.vocab
    for s in text.SPLITS:
        np.testing.assert_array_equal(corpus.split(s), expected.split(s))
    path.unlink()  # prepared: the archive is not read again
    again = text.load_corpus(name, str(tmp_path))
    assert again.vocab == expected.vocab and np.array_equal(again.test, expected.test)
    assert sorted(p.name for p in (tmp_path / "jaxnas_text").iterdir()) == [name]  # no scratch folder left


def test_a_damaged_archive_is_one_line_naming_the_file(tmp_path, monkeypatch):
    path, spec = _fake(text.PTB, tmp_path, "./")
    monkeypatch.setitem(text.ARCHIVES, "ptb", spec)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError) as e:
        text.load_corpus("ptb", str(tmp_path))
    assert str(path) in str(e.value) and "delete it" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "jaxnas_text").exists()


def test_a_member_with_the_wrong_checksum_is_one_line(tmp_path):
    path, _ = _fake(text.PTB, tmp_path, "./")  # the real PTB checksums: the fake files do not match them
    with pytest.raises(DataError) as e:
        text.load_corpus("ptb", str(tmp_path))
    assert "ptb.train.txt" in str(e.value) and "MD5" in str(e.value) and "\n" not in str(e.value)


def test_no_network_is_one_line_and_leaves_no_folders(tmp_path, monkeypatch):
    monkeypatch.setattr(download, "host_resolves", lambda url: False)
    data_dir = tmp_path / "data"
    with pytest.raises(DataError) as e:
        text.load_corpus("wikitext2", str(data_dir))
    message = str(e.value)
    assert "no network" in message and text.WIKITEXT2.url in message and "\n" not in message
    assert str(data_dir / "downloads" / "manual" / "wikitext-2-v1.zip") in message
    assert not data_dir.exists()


def test_an_unknown_corpus_names_the_valid_ones():
    with pytest.raises(DataError, match="unknown text corpus 'ptb2'; valid corpora: pydoc, ptb, wikitext2"):
        text.load_corpus("ptb2")
