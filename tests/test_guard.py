"""tinynet_core.guard: inputs, outputs, manifests, folder locks, and a kill that leaves nothing half-written."""
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from tinynet_core.guard import (MANIFEST, GuardError, check_input_file, check_output_dir, check_output_file,
                                exit_on_termination, folder_lock, manifest_files, record_outputs)

KILLED_WRITER = textwrap.dedent('''
    import sys, time
    from pathlib import Path
    from tinynet_core.atomic import replace_atomically
    from tinynet_core.guard import exit_on_termination, folder_lock

    exit_on_termination()
    folder = Path(sys.argv[1])
    with folder_lock(folder, "run folder"):
        def write(tmp):
            with open(tmp, "w") as f:
                f.write("half of it")
            print("writing", flush=True)
            time.sleep(120)

        replace_atomically(folder / "result.txt", write)
''')


def test_sigterm_during_an_atomic_write_leaves_no_temp_file_and_releases_the_lock(tmp_path):
    folder = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(folder)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing", proc.stderr.read()
        assert [p for p in folder.iterdir() if p.name.endswith(".tmp")]  # mid-write: the temporary file exists
        with pytest.raises(GuardError, match=f"run folder {folder} is in use by pid {proc.pid}"):
            with folder_lock(folder, "run folder"):
                pass
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stderr = proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
    assert "Traceback" not in stderr
    assert sorted(p.name for p in folder.iterdir()) == [".tinynet.lock"]  # no .tmp, no half result.txt
    assert (folder / ".tinynet.lock").read_text() == ""  # the lock's cleanup ran
    with folder_lock(folder, "run folder"):  # and it is free
        pass


def test_exit_on_termination_outside_the_main_thread_changes_nothing():
    before = signal.getsignal(signal.SIGTERM)
    errors = []

    def run():
        try:
            exit_on_termination()
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert errors == [] and signal.getsignal(signal.SIGTERM) is before


def test_inputs_are_bounded_regular_files(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    start = time.perf_counter()
    with pytest.raises(GuardError, match="is not a regular file"):
        check_input_file(fifo, "--checkpoint", 1 << 20)
    with pytest.raises(GuardError, match="is not a regular file"):
        check_input_file("/dev/zero", "--image", 1 << 20)
    assert time.perf_counter() - start < 1
    big = tmp_path / "big"
    big.write_bytes(b"x" * 2048)
    with pytest.raises(GuardError, match="is 2 kB, more than the 1 kB"):
        check_input_file(big, "plan", 1024)
    with pytest.raises(GuardError, match="does not exist"):
        check_input_file(tmp_path / "nope", "plan", 1024)
    with pytest.raises(GuardError, match="is a folder, not a file"):
        check_input_file(tmp_path, "plan", 1024)


def test_output_file_rules(tmp_path):
    source = tmp_path / "in.csv"
    source.write_text("a\n")
    with pytest.raises(GuardError, match="is also the input --data"):
        check_output_file(source, "--out", [("--data", source)], overwrite=True)
    with pytest.raises(GuardError, match="lies inside the input folder --data"):
        check_output_file(tmp_path / "x.csv", "--out", [("--data", tmp_path)], overwrite=True)
    with pytest.raises(GuardError, match="already exists; pass --overwrite"):
        check_output_file(source, "--out")
    check_output_file(source, "--out", overwrite=True)
    with pytest.raises(GuardError, match="is a file, not a folder"):
        check_output_file(source / "x.csv", "--out")
    with pytest.raises(GuardError, match="cannot write --out /proc/x.csv"):
        check_output_file("/proc/x.csv", "--out")
    with pytest.raises(GuardError, match="is a folder; give a file name"):
        check_output_file(tmp_path, "--out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]  # the checks left nothing behind


def test_a_file_we_wrote_may_be_replaced(tmp_path):
    (tmp_path / "ours.png").write_bytes(b"1")
    (tmp_path / "theirs.png").write_bytes(b"2")
    record_outputs(tmp_path, ["ours.png"], "test")
    assert manifest_files(tmp_path) == {"ours.png"}
    check_output_file(tmp_path / "ours.png", "--out")
    with pytest.raises(GuardError, match="already exists"):
        check_output_file(tmp_path / "theirs.png", "--out")
    with pytest.raises(GuardError, match="already holds theirs.png, which this command did not write"):
        check_output_dir(tmp_path, "--out", ["ours.png", "theirs.png"])
    check_output_dir(tmp_path, "--out", ["ours.png", "new.png"])


def test_a_manifest_that_is_not_a_file_is_ignored_without_blocking(tmp_path):
    os.mkfifo(tmp_path / MANIFEST)
    (tmp_path / "x.png").write_bytes(b"1")
    with pytest.raises(GuardError, match="already exists"):
        check_output_file(tmp_path / "x.png", "--out")
    (tmp_path / MANIFEST).unlink()
    (tmp_path / MANIFEST).write_text('{"files": 5}')
    assert manifest_files(tmp_path) == set()


def test_folder_lock_refuses_a_pipe_and_a_file(tmp_path):
    os.mkfifo(tmp_path / ".tinynet.lock")
    with pytest.raises(GuardError, match="is not a regular file"):
        with folder_lock(tmp_path, "--trials-dir"):
            pass
    (tmp_path / "file").write_text("")
    with pytest.raises(GuardError, match="is a file, not a folder"):
        with folder_lock(tmp_path / "file", "--trials-dir"):
            pass


@pytest.mark.parametrize("text,ok", [("0", True), (str(2 ** 32 - 1), True), (str(2 ** 32), False), ("-1", False),
                                     ("1e3", False), ("nan", False)])
def test_seed_type(text, ok):
    import argparse

    from tinynet_cli._common import seed_int

    if ok:
        assert seed_int(text) == int(text)
    else:
        with pytest.raises(argparse.ArgumentTypeError):
            seed_int(text)


# ---- staged writes ---------------------------------------------------------------------------------------------

def test_staged_files_are_written_first_and_renamed_in_order_after_the_block(tmp_path):
    from tinynet_core.atomic import staged_replace

    first, second = tmp_path / "model_best.pth.tar", tmp_path / "last.pth.tar"
    first.write_text("old best")

    def write(text):
        return lambda tmp: open(tmp, "w").write(text)

    with staged_replace([(first, write("new best")), (second, write("new last"))]):
        assert first.read_text() == "old best" and not second.exists()  # nothing replaced yet
        assert len(list(tmp_path.glob(".*.tmp"))) == 2  # but both written
        (tmp_path / "summary.csv").write_text("row")  # what the block writes lands before both renames
    assert first.read_text() == "new best" and second.read_text() == "new last"
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_failed_block_replaces_nothing_and_leaves_no_temporary_file(tmp_path):
    from tinynet_core.atomic import staged_replace

    target = tmp_path / "last.pth.tar"
    target.write_text("epoch 3")
    with pytest.raises(KeyboardInterrupt):
        with staged_replace([(target, lambda tmp: open(tmp, "w").write("epoch 4"))]):
            raise KeyboardInterrupt  # Ctrl-C, or SIGTERM turned into SystemExit, between the write and the rename
    assert target.read_text() == "epoch 3" and [p.name for p in tmp_path.iterdir()] == ["last.pth.tar"]
