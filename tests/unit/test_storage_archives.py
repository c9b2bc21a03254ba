"""Archives are unpacked only when every member stays inside the destination."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from unitserve.storage.archives import is_archive, unpack
from unitserve.storage.errors import StorageError, UnsafeArchive


def make_tar(path: Path, *members: tarfile.TarInfo, data: bytes = b"x") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for member in members:
            if member.isfile():
                member.size = len(data)
                tar.addfile(member, io.BytesIO(data))
            else:
                tar.addfile(member)
    return path


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


def test_archive_names() -> None:
    assert all(is_archive(n) for n in ("a.tar", "a.tar.gz", "A.TGZ", "a.zip"))
    assert not any(is_archive(n) for n in ("model.joblib", "a.gz", "tar"))


def test_a_plain_archive_with_an_inside_link_unpacks(tmp_path: Path) -> None:
    archive = make_tar(
        tmp_path / "ok.tar.gz",
        member("model/weights.bin"),
        member("model/latest", tarfile.SYMTYPE, "weights.bin"),
        member("model/sub/up", tarfile.SYMTYPE, "../weights.bin"),
    )
    unpack(archive, tmp_path / "out", "ok.tar.gz")
    assert (tmp_path / "out/model/latest").read_bytes() == b"x"
    assert (tmp_path / "out/model/sub/up").read_bytes() == b"x"


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        (member("../escape.txt"), "escapes"),
        (member("a/../../escape.txt"), "escapes"),
        (member("/etc/cron.d/x"), "escapes"),
        (member("link", tarfile.SYMTYPE, "/etc/passwd"), "points outside"),
        (member("a/link", tarfile.SYMTYPE, "../../etc"), "points outside"),
        (member("hard", tarfile.LNKTYPE, "../outside"), "points outside"),
        (member("dev", tarfile.CHRTYPE), "device file or FIFO"),
        (member("fifo", tarfile.FIFOTYPE), "device file or FIFO"),
    ],
)
def test_a_member_escaping_refuses_the_whole_archive(
    tmp_path: Path, bad: tarfile.TarInfo, says: str
) -> None:
    archive = make_tar(tmp_path / "bad.tar.gz", member("fine.txt"), bad)
    with pytest.raises(UnsafeArchive, match=rf"^s3://b/bad.tar.gz: refused: .*{says}"):
        unpack(archive, tmp_path / "out", "s3://b/bad.tar.gz")
    assert not (tmp_path / "out" / "fine.txt").exists()  # nothing written at all
    assert not (tmp_path / "escape.txt").exists()


@pytest.mark.parametrize("name", ["../evil.py", "/abs/evil.py", "a/../../evil.py"])
def test_a_zip_member_escaping_is_refused(tmp_path: Path, name: str) -> None:
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("fine.txt", b"x")
        zipped.writestr(zipfile.ZipInfo(name), b"evil")
    with pytest.raises(UnsafeArchive, match="escapes"):
        unpack(archive, tmp_path / "out", "bad.zip")
    assert not (tmp_path / "out" / "fine.txt").exists()


def test_a_broken_archive_says_so(tmp_path: Path) -> None:
    archive = tmp_path / "broken.tar.gz"
    archive.write_bytes(b"not gzip at all")
    with pytest.raises(StorageError, match=r"^broken.tar.gz: not a readable archive") as caught:
        unpack(archive, tmp_path / "out", "broken.tar.gz")
    assert "\n" not in str(caught.value)
