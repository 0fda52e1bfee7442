"""The build's native libraries are all for the architecture it was built for — checked from the files
themselves (ELF headers), so it runs on any machine: an arm64 build on an x86_64 machine, whose handlers
cannot be run here (tests/build/conftest.py's ``runnable`` skips those, saying so), still has its sizes
(test_build_sizes.py) and its layout checked here."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.build.conftest import BUILD_DIR, wheel_architecture

pytestmark = pytest.mark.build

# ELF e_machine values (System V ABI): what a shared object was compiled for
ELF_MACHINE = {0x3E: "x86_64", 0xB7: "arm64"}


def elf_architecture(path: Path) -> str | None:
    """x86_64 / arm64 of an ELF file, "other" for another machine, None if it is not ELF."""
    with path.open("rb") as handle:
        header = handle.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    byte_order = "little" if header[5] == 1 else "big"
    return ELF_MACHINE.get(int.from_bytes(header[18:20], byte_order), "other")


def built_architecture() -> str:
    """The LAYER_ARCH `make build` was run with, from the stamp it leaves in the build folder."""
    stamps = sorted(BUILD_DIR.glob(".jobgraph-built-*"))
    assert len(stamps) == 1, f"expected one .jobgraph-built-<arch> stamp in {BUILD_DIR}, found {stamps}"
    return stamps[0].name.removeprefix(".jobgraph-built-")


def test_every_native_library_is_for_the_built_architecture(built):
    arch = built_architecture()
    assert arch in ("x86_64", "arm64")
    folders = {f.code_dir for f in built.values()} | {folder for f in built.values() for _, folder in f.layers}
    libraries: dict[Path, str | None] = {}
    for folder in folders:
        for path in folder.rglob("*.so*"):
            if path.is_file() and not path.is_symlink():
                libraries[path] = elf_architecture(path)
    # the scientific layer is mostly native code: numpy, pyarrow, pydantic-core …
    assert len([p for p, a in libraries.items() if a is not None]) > 20
    wrong = {str(p.relative_to(BUILD_DIR)): a for p, a in libraries.items() if a is not None and a != arch}
    assert wrong == {}, f"built for {arch} but these libraries are not"
    scientific = dict(built["ProcessorFunction"].layers)["ScientificLayer"] / "python"
    assert wheel_architecture(scientific) == {"x86_64": "x86_64", "arm64": "aarch64"}[arch]


def test_elf_architecture_reads_the_machine_field(tmp_path):
    def elf(machine: int) -> Path:
        path = tmp_path / f"m{machine}.so"
        path.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(11) + machine.to_bytes(2, "little") + bytes(44))
        return path

    assert elf_architecture(elf(0x3E)) == "x86_64"
    assert elf_architecture(elf(0xB7)) == "arm64"
    assert elf_architecture(elf(0x28)) == "other"  # 32-bit ARM
    (tmp_path / "text.so").write_text("not a library")
    assert elf_architecture(tmp_path / "text.so") is None
