"""File hashing for provenance: full sha256 of a file or of a DICOM folder."""

from __future__ import annotations

import hashlib

from infarctsam.io.hashing import file_sha256


def test_file_digest_is_the_full_sha256(tmp_path):
    f = tmp_path / "a.bin"
    f.write_bytes(b"infarct" * 300_000)  # several read blocks
    assert file_sha256(f) == hashlib.sha256(b"infarct" * 300_000).hexdigest()
    assert len(file_sha256(f)) == 64


def test_folder_digest_covers_names_and_contents(tmp_path):
    d = tmp_path / "series"
    (d / "sub").mkdir(parents=True)
    (d / "1.dcm").write_bytes(b"one")
    (d / "sub" / "2.dcm").write_bytes(b"two")
    first = file_sha256(d)
    expected = hashlib.sha256(b"1.dcm" + b"one" + b"sub/2.dcm" + b"two").hexdigest()
    assert first == expected
    (d / "sub" / "2.dcm").rename(d / "sub" / "3.dcm")
    assert file_sha256(d) != first  # renaming a slice changes the digest


def test_model_layer_does_not_import_the_api():
    import ast
    from pathlib import Path

    import infarctsam

    root = Path(infarctsam.__file__).parent
    for path in (root / "model").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith(("infarctsam.api", "infarctsam.cli")), (path, node.module)
