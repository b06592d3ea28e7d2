"""FileMemo: one read per file identity; a changed or replaced file is read again; bounded."""

import pytest

from vicokd.memo import FileMemo


def test_a_file_is_read_once_until_it_changes(tmp_path):
    reads: list[str] = []

    def read(path):
        reads.append(path.name)
        return path.read_text()

    memo: FileMemo[str] = FileMemo(limit=10)
    path = tmp_path / "a.json"
    path.write_text("one")
    assert memo.get(path, read) == "one" and memo.get(path, read) == "one" and reads == ["a.json"]
    path.write_text("three")  # rewritten in place: another size and mtime
    assert memo.get(path, read) == "three" and len(reads) == 2
    replacement = tmp_path / "b.json"
    replacement.write_text("thre3")  # same size, replaced atomically: another inode
    replacement.replace(path)
    assert memo.get(path, read) == "thre3" and len(reads) == 3
    path.unlink()
    with pytest.raises(FileNotFoundError):
        memo.get(path, read)


def test_the_least_recently_used_entries_leave_beyond_the_limit(tmp_path):
    memo: FileMemo[bytes] = FileMemo(limit=8, size=len)
    paths = []
    for name in "abc":
        paths.append(tmp_path / name)
        paths[-1].write_bytes(b"1234")
    memo.get(paths[0], lambda p: p.read_bytes())
    memo.get(paths[1], lambda p: p.read_bytes())
    memo.get(paths[0], lambda p: p.read_bytes())  # a is now the most recent
    memo.get(paths[2], lambda p: p.read_bytes())
    kept = [identity[0].rsplit("/", 1)[1] for identity in memo._entries]
    assert kept == ["a", "c"] and memo._total == 8
