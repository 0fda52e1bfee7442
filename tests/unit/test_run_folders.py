"""--overwrite replaces only what jobgraph wrote, in one swap (issue 17.3); --out is checked before a run."""

from __future__ import annotations

import os

import pytest

from jobgraph.adapters import local_disk
from jobgraph.adapters.local_disk import RUN_MARKER, check_destination, staged_run
from jobgraph.core.errors import JobGraphError


def write_run(out, run_id: str, text: str = "new", *, overwrite: bool = False) -> None:
    with staged_run(out, run_id, overwrite=overwrite) as store:
        store.put(f"{run_id}/merged_percentiles.json", text.encode())
        store.put(f"{run_id}/delays/a.parquet", b"x")


def test_a_run_folder_carries_the_marker_and_is_replaced_whole(tmp_path):
    write_run(tmp_path, "r1", "old")
    assert (tmp_path / "r1" / RUN_MARKER).is_file()
    (tmp_path / "r1" / "delays" / "stale.parquet").write_bytes(b"old")
    write_run(tmp_path, "r1", "new", overwrite=True)
    assert (tmp_path / "r1" / "merged_percentiles.json").read_text() == "new"
    assert not (tmp_path / "r1" / "delays" / "stale.parquet").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r1"]  # no staging or old folder left


def test_user_files_are_never_replaced(tmp_path):
    important = tmp_path / "important"
    important.mkdir()
    (important / "thesis.tex").write_text("years of work")
    (important / "data").mkdir()
    with pytest.raises(JobGraphError) as caught:
        write_run(tmp_path, "important", overwrite=True)
    assert "holds what jobgraph did not write (data, thesis.tex); left as it is" in str(caught.value)
    assert (important / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["important"]


def test_a_file_added_to_a_run_folder_is_kept(tmp_path):
    write_run(tmp_path, "r1")
    (tmp_path / "r1" / "notes.txt").write_text("mine")
    with pytest.raises(JobGraphError, match=r"notes\.txt"):
        check_destination(tmp_path, "r1", overwrite=True)


def test_a_layout_shaped_folder_without_result_or_marker_is_refused(tmp_path):
    (tmp_path / "r1" / "delays").mkdir(parents=True)
    with pytest.raises(JobGraphError, match=r"did not write \(delays\)"):
        check_destination(tmp_path, "r1", overwrite=True)


def test_folders_written_before_the_marker_are_recognised(tmp_path):
    (tmp_path / "r1" / "percentiles").mkdir(parents=True)
    (tmp_path / "r1" / "merged_percentiles.json").write_text("{}")
    write_run(tmp_path, "r1", overwrite=True)
    assert (tmp_path / "r1" / RUN_MARKER).is_file()


def test_an_empty_folder_may_be_replaced(tmp_path):
    (tmp_path / "r1").mkdir()
    write_run(tmp_path, "r1", overwrite=True)
    assert (tmp_path / "r1" / "merged_percentiles.json").is_file()


@pytest.mark.parametrize("kind", ["file", "symlink"])
def test_overwrite_onto_a_file_or_link_is_refused(tmp_path, kind):
    target = tmp_path / "elsewhere"
    write_run(tmp_path, "elsewhere")
    if kind == "file":
        (tmp_path / "r1").write_text("a file")
    else:
        (tmp_path / "r1").symlink_to(target)
    expected = "a file" if kind == "file" else "a symbolic link"
    with pytest.raises(JobGraphError, match=f"is {expected}, not a run folder jobgraph wrote"):
        write_run(tmp_path, "r1", overwrite=True)
    assert (target / "merged_percentiles.json").is_file()


def test_existing_folder_without_overwrite(tmp_path):
    write_run(tmp_path, "r1")
    with pytest.raises(JobGraphError, match="already exists; choose another --run-id or pass --overwrite"):
        check_destination(tmp_path, "r1", overwrite=False)


@pytest.mark.parametrize(
    ("out", "expected"),
    [("a-file", "exists and is not a folder"), ("a-file/below", "cannot write there"), ("/proc/x", "cannot write")],
)
def test_out_must_be_a_writable_folder(tmp_path, out, expected):
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(JobGraphError, match=expected):
        check_destination(tmp_path / out, "r1", overwrite=True)


def test_a_failed_run_leaves_the_old_folder_and_no_staging(tmp_path):
    write_run(tmp_path, "r1", "old")
    with pytest.raises(RuntimeError), staged_run(tmp_path, "r1", overwrite=True) as store:
        store.put("r1/merged_percentiles.json", b"half")
        raise RuntimeError("the run failed")
    assert (tmp_path / "r1" / "merged_percentiles.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r1"]


def test_stale_staging_of_a_dead_process_is_removed_and_other_folders_are_not(tmp_path):
    dead = tmp_path / ".r1.partial-999999999"  # above pid_max: no such process
    dead.mkdir()
    users = tmp_path / ".r1.partial"
    users.mkdir()
    other = tmp_path / ".r10.partial-999999999"
    other.mkdir()
    write_run(tmp_path, "r1")
    assert not dead.exists()
    assert users.is_dir() and other.is_dir()


def test_swap_without_renameat2_uses_two_renames(tmp_path, monkeypatch):
    monkeypatch.setattr(local_disk, "_exchange", lambda a, b: False)
    write_run(tmp_path, "r1", "old")
    write_run(tmp_path, "r1", "new", overwrite=True)
    assert (tmp_path / "r1" / "merged_percentiles.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r1"]


@pytest.mark.skipif(os.uname().sysname != "Linux", reason="renameat2 is Linux's")
def test_exchange_swaps_two_folders(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x").write_text("a")
    (tmp_path / "b").mkdir()
    assert local_disk._exchange(tmp_path / "a", tmp_path / "b")
    assert (tmp_path / "b" / "x").read_text() == "a"


def test_a_folder_is_held_by_one_process_and_released_when_it_dies(tmp_path):
    import subprocess
    import sys
    import textwrap

    logs = tmp_path / ".logs" / "r1"
    logs.mkdir(parents=True)
    (logs / "old.log").write_text("a previous run's")
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from jobgraph.adapters.local_disk import exclusive_folder
            with exclusive_folder({str(logs)!r}, "run r1"):
                print("held", flush=True)
                time.sleep(600)
            """)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        assert not (logs / "old.log").exists()  # emptied for the new run
        with (
            pytest.raises(JobGraphError, match=r"run r1: another jobgraph process is using"),
            local_disk.exclusive_folder(logs, "run r1"),
        ):
            pass
        holder.kill()  # kill -9: the kernel drops the hold
        holder.wait()
        with local_disk.exclusive_folder(logs, "run r1") as folder:
            assert folder == logs
    finally:
        holder.kill()
