"""The bpe-numba command: train -> encode -> inspect, every bad-argument path (one line, exit 2), bugs
(traceback, exit 1), Ctrl-C (130), a closed stdout (141), and outputs that must not destroy inputs."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from bpe_numba import BPEFileNotFoundError, BPEInputError, BPEValueError, ModelNotSavedError, Tokenizer, train_bpe

CORPUS = ("Once upon a time there was a cat.<|endoftext|>The cat's ball rolled away! 42 days later...\n") * 300


def run(args, env, cwd, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "bpe_numba", *map(str, args)],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout,
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    (d / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    return d


@pytest.fixture(scope="module")
def trained(workdir, package_env):
    out = run(["train", "corpus.txt", "--vocab-size", "300", "--special-token", "<|endoftext|>",
               "--workers", "1", "--out", "model", "--json"], package_env, workdir)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_train_writes_model_and_reports(trained, workdir):
    from bpe_numba import train_bpe

    vocab, merges = train_bpe(workdir / "corpus.txt", 300, ["<|endoftext|>"], num_workers=1, progress=False)
    tok = Tokenizer.from_files(workdir / "model" / "vocab.json", workdir / "model" / "merges.txt")
    assert tok.vocab == vocab and tok.merges == merges and tok.special_tokens == ["<|endoftext|>"]
    assert trained["merges"] == len(merges) and trained["vocab_size"] == 300
    assert set(trained["seconds"]) >= {"pretokenize", "intern", "merges", "write", "total"}
    assert trained["unique_pretokens"] > 0 and trained["peak_rss_mb"]["main"] > 0
    longest = trained["longest_tokens"][0]
    assert longest["bytes"] == max(len(b) for i, b in vocab.items() if i != 256)
    assert sorted(p.name for p in (workdir / "model").iterdir()) == ["bpe_numba.json", "merges.txt", "vocab.json"]


def test_train_human_report(workdir, package_env):
    out = run(["train", "corpus.txt", "--vocab-size", "280", "--workers", "1"], package_env, workdir)
    assert out.returncode == 0, out.stderr
    assert "merges" in out.stdout and "pre-tokenize" in out.stdout and "longest tokens:" in out.stdout
    assert "model not saved" in out.stdout


def test_encode_then_inspect(trained, workdir, package_env):
    out = run(["encode", "--model", "model", "corpus.txt", "-o", "ids.npy", "--json"], package_env, workdir)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    tok = Tokenizer.from_files(workdir / "model" / "vocab.json", workdir / "model" / "merges.txt")
    ids = np.load(workdir / "ids.npy")
    assert ids.tolist() == tok.encode(CORPUS) and report["tokens"] == len(ids)
    assert report["bytes_per_token"] == pytest.approx(len(CORPUS.encode()) / len(ids), rel=1e-3)

    out = run(["inspect", "model", "--sample", "corpus.txt", "--json"], package_env, workdir)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["vocab_size"] == 300 and info["special_tokens"] == {"<|endoftext|>": 256}
    assert info["sample_tokens"] == len(ids)
    out = run(["inspect", "model"], package_env, workdir)
    assert out.returncode == 0 and "bytes/token" in out.stdout, out.stderr


def test_train_on_embedded_default(tmp_path, package_env):
    out = run(["train", "--demo-size-mb", "0.3", "--vocab-size", "400", "--json"], package_env, tmp_path)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["special_tokens"] == ["<|endoftext|>"] and report["merges"] == 400 - 257
    assert list(tmp_path.iterdir()) == [], "the embedded corpus must not be left behind"


BAD = [
    (["train", "missing.txt"], "missing.txt: no such file"),
    (["train", "corpus.txt", "--vocab-size", "100"], "vocab_size=100 is below"),
    (["train", "corpus.txt", "--vocab-size", "ten"], "'ten' is not an integer"),
    (["train", "corpus.txt", "--workers", "0"], "0 is not positive"),
    (["train", "corpus.txt", "--special-token", ""], "empty string"),
    (["train", "corpus.txt", "--special-token", "a", "--special-token", "a"], "repeats"),
    (["train", "corpus.txt", "--out", "corpus.txt"], "is a file"),
    (["train", "bad.txt"], "invalid UTF-8 at byte offset 3"),
    (["train", "corpus.txt", "--bogus"], "unrecognized arguments: --bogus"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["encode", "corpus.txt", "-o", "x.npy"], "the following arguments are required: --model"),
    (["encode", "--model", "nomodel", "corpus.txt", "-o", "x.npy"], "nomodel: not a directory"),
    (["encode", "--model", "empty", "corpus.txt", "-o", "x.npy"], "vocab.json: missing"),
    (["encode", "--model", "model", "missing.txt", "-o", "x.npy"], "missing.txt: no such file"),
    (["encode", "--model", "model", "corpus.txt", "-o", "nodir/x.npy"], "does not exist; create it first"),
    (["encode", "--model", "model", "bad.txt", "-o", "x.npy"], "invalid UTF-8 at byte offset 3"),
    (["inspect", "nomodel"], "nomodel: not a directory"),
    (["inspect", "model", "--sample", "missing.txt"], "missing.txt: no such file"),
]


@pytest.mark.parametrize("args, message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_arguments_exit_2_with_one_line(trained, workdir, package_env, args, message):
    (workdir / "bad.txt").write_bytes(b"abc\xffdef")
    (workdir / "empty").mkdir(exist_ok=True)
    out = run(args, package_env, workdir)
    assert out.returncode == 2, (out.returncode, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert message in lines[0] and "Traceback" not in out.stderr
    assert not (workdir / "x.npy").exists()


def test_no_command_prints_help(package_env, tmp_path):
    out = run([], package_env, tmp_path)
    assert out.returncode == 2 and "train" in out.stderr and "encode" in out.stderr


# ---------------------------------------------------------------------------------------------------------
# Outputs that would destroy an input (issue 13, item 1)
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("output, culprit", [
    ("corpus.txt", "is the input file"),
    ("./corpus.txt", "is the input file"),
    ("hardlink.txt", "is the input file"),
    ("symlink.txt", "is the input file"),
    ("model/vocab.json", "is the model's vocab.json"),
    ("model/../model/merges.txt", "is the model's merges.txt"),
    ("model/bpe_numba.json", "is the model's bpe_numba.json"),
])
def test_encode_refuses_to_overwrite_its_inputs(trained, workdir, package_env, output, culprit):
    for name, make in (("hardlink.txt", os.link), ("symlink.txt", os.symlink)):
        if not (workdir / name).exists():
            make(workdir / "corpus.txt", workdir / name)
    before = {p: p.read_bytes() for p in [workdir / "corpus.txt", *(workdir / "model").iterdir()]}
    out = run(["encode", "--model", "model", "corpus.txt", "-o", output], package_env, workdir)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and culprit in lines[0] and "choose another output path" in lines[0], out.stderr
    assert {p: p.read_bytes() for p in before} == before
    assert not [n for n in os.listdir(workdir) if n.endswith(".tmp")]


# ---------------------------------------------------------------------------------------------------------
# One line for bad input, a traceback for a bug (issue 14; issue 13, item 9)
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, message", [
    ("inf", "'inf' is not a finite number"),
    ("-inf", "'-inf' is not a finite number"),
    ("nan", "'nan' is not a finite number"),
    ("-2", "-2 is not positive"),
    ("0", "0 is not positive"),
    ("1e12", "above the demo corpus's limit"),
    ("ten", "'ten' is not a number"),
])
def test_demo_size_is_checked(tmp_path, package_env, value, message):
    out = run(["train", f"--demo-size-mb={value}"], package_env, tmp_path)
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and list(tmp_path.iterdir()) == []


def test_demo_size_beyond_free_space_is_one_line(tmp_path, monkeypatch, capsys):
    from bpe_numba import cli

    real = shutil.disk_usage
    monkeypatch.setattr(cli.shutil, "disk_usage", lambda path: real(path)._replace(free=10**6))
    assert cli.main(["train", "--demo-size-mb", "5"]) == 2
    err = capsys.readouterr().err
    assert "would not fit in" in err and "MB free" in err and len(err.strip().splitlines()) == 1


INTERNAL = r"""
import sys
from bpe_numba import cli

def boom(args):
    raise {exc}("count_gpt2: a segment lies outside data")

cli.cmd_inspect = boom
sys.exit(cli.main(["inspect", "model"]))
"""


@pytest.mark.parametrize("exc", ["RuntimeError", "ValueError", "TypeError", "IndexError"])
def test_internal_error_shows_a_traceback(tmp_path, package_env, exc):
    out = subprocess.run([sys.executable, "-c", INTERNAL.format(exc=exc)], capture_output=True, text=True,
                         env=package_env, cwd=tmp_path, timeout=120)
    assert out.returncode == 1, out.stderr
    assert "Traceback (most recent call last)" in out.stderr
    assert f"{exc}: count_gpt2: a segment lies outside data" in out.stderr


def test_internal_error_propagates_from_main(monkeypatch):
    from bpe_numba import cli

    def boom(args):
        raise ValueError("a bug, not bad input")

    monkeypatch.setattr(cli, "cmd_inspect", boom)
    with pytest.raises(ValueError, match="a bug"):
        cli.main(["inspect", "model"])


@pytest.mark.parametrize("error, message", [
    (OSError(errno.ENOSPC, "No space left on device", "/data/ids.npy"), "/data/ids.npy: No space left on device"),
    (PermissionError(errno.EACCES, "Permission denied"), "Permission denied"),
    (BPEValueError("chunk_size=0; use a positive\n number"), "chunk_size=0; use a positive number"),
    (BPEFileNotFoundError("x.txt: no such file"), "x.txt: no such file"),
])
def test_bad_input_and_os_errors_are_one_line(monkeypatch, capsys, error, message):
    from bpe_numba import cli

    def fail(args):
        raise error

    monkeypatch.setattr(cli, "cmd_encode", fail)
    assert cli.main(["encode", "--model", "m", "in.txt", "-o", "x.npy"]) == 2
    err = capsys.readouterr().err
    assert err == f"bpe-numba encode: error: {message}\n"


def test_closed_stdout_ends_quietly(tmp_path, package_env):
    """`bpe-numba train | head -1`: no "[Errno 32] Broken pipe", no "Exception ignored", exit 141."""
    proc = subprocess.Popen([sys.executable, "-m", "bpe_numba", "train", "--demo-size-mb", "0.3",
                             "--vocab-size", "400"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=package_env, cwd=tmp_path)
    first = proc.stdout.readline()
    proc.stdout.close()  # the reader goes away, as head -1 does
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 141, err
    assert first.startswith(b"no INPUT: ") and err == ""


def test_closed_stdout_with_json(tmp_path, package_env, trained, workdir):
    proc = subprocess.run(f'"{sys.executable}" -m bpe_numba inspect model --top 5000 --json | head -c 10',
                          shell=True, capture_output=True, env=package_env, cwd=workdir, timeout=300)
    assert proc.stdout == b'{\n  "model' and proc.stderr == b""


@pytest.mark.parametrize("job, delay", [("demo", 0.4), ("demo", 1.5), ("encode", 0.25), ("encode", 0.45)])
def test_ctrl_c_is_exit_130_without_traceback(trained, workdir, package_env, job, delay):
    """SIGINT while the command works in its own process: writing the demo corpus, or starting the kernels
    and loading the model for encode, or encoding."""
    if job == "encode":  # long enough to be interrupted however fast encoding gets: 100 MB of random words
        import random

        rng = random.Random(5)
        words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 12)))
                 for _ in range(200_000)]
        (workdir / "long.txt").write_text(" ".join(words * 40))
    args = {"demo": ["train", "--demo-size-mb", "100"],
            "encode": ["encode", "--model", "model", "long.txt", "-o", "sigint.npy"]}[job]
    proc = subprocess.Popen([sys.executable, "-m", "bpe_numba", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=package_env, cwd=workdir,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    if job == "encode" and proc.returncode == 0:
        pytest.skip(f"encode finished within {delay} s, before the signal")
    assert proc.returncode == 130, err
    assert err.decode().strip() == "bpe-numba: interrupted"
    assert not (workdir / "sigint.npy").exists()


# ---------------------------------------------------------------------------------------------------------
# --out (issue 13, item 7) and the report (item 10)
# ---------------------------------------------------------------------------------------------------------

def read_only_directory(tmp_path) -> Path:
    """A directory this process cannot create files in: chmod 555, or for root (whom chmod does not stop)
    /sys, where creating a file fails for everyone."""
    if os.geteuid() != 0:
        d = tmp_path / "ro"
        d.mkdir()
        d.chmod(0o555)
        return d
    try:
        os.close(os.open("/sys/bpe_numba_probe", os.O_CREAT | os.O_WRONLY, 0o600))
    except OSError:
        return Path("/sys")
    os.unlink("/sys/bpe_numba_probe")
    pytest.skip("running as root and /sys is writable: no read-only directory to test with")


def test_out_is_checked_before_training(tmp_path, workdir, package_env):
    ro = read_only_directory(tmp_path)
    (tmp_path / "file").write_text("x")
    cases = [
        (ro / "model", f"cannot write into {ro}"),
        (tmp_path / "file" / "model", f"{tmp_path / 'file'} is a file, not a directory"),
        (tmp_path / "file", "is a file"),
    ]
    for out_dir, message in cases:
        # No INPUT: the check must also come before the demo corpus is generated (1000 MB would take minutes).
        for args in (["train", "corpus.txt", "--vocab-size", "300"], ["train", "--demo-size-mb", "1000"]):
            out = run([*args, "--out", str(out_dir)], package_env, workdir, timeout=60)
            assert out.returncode == 2 and message in out.stderr, (args, out.stderr)
            assert len(out.stderr.strip().splitlines()) == 1


def test_train_bpe_checks_out_dir_before_training(tmp_path, workdir, monkeypatch):
    import bpe_numba.trainer

    def no_training(*job):
        raise AssertionError("trained although out_dir cannot be written")

    monkeypatch.setattr(bpe_numba.trainer, "_run_training", no_training)
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file, not a directory") as info:
        train_bpe(workdir / "corpus.txt", 300, out_dir=tmp_path / "file" / "sub", isolate=False)
    assert isinstance(info.value, BPEInputError)
    with pytest.raises(PermissionError, match="cannot write into"):
        train_bpe(workdir / "corpus.txt", 300, out_dir=read_only_directory(tmp_path) / "m", isolate=False)


def test_a_failed_save_after_training_keeps_the_model(tmp_path, workdir, monkeypatch, capsys):
    """The disk fills up (or the folder turns read-only) while training: the model goes to a fresh folder
    under the temporary directory, and the one-line error says where."""
    import bpe_numba.formats.gpt2 as gpt2
    from bpe_numba import cli

    out_dir = tmp_path / "model"
    real = gpt2.atomic_write_bytes

    def full_disk(path, data):
        if os.path.abspath(path).startswith(str(tmp_path)):  # out_dir, or its temporary sibling
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data)

    monkeypatch.setattr(gpt2, "atomic_write_bytes", full_disk)
    vocab, merges = train_bpe(workdir / "corpus.txt", 300, ["<|endoftext|>"], progress=False)
    with pytest.raises(ModelNotSavedError) as info:
        train_bpe(workdir / "corpus.txt", 300, ["<|endoftext|>"], out_dir=out_dir, progress=False)
    err = info.value
    assert isinstance(err, OSError) and isinstance(err, BPEInputError) and err.out_dir == str(out_dir)
    saved = Path(err.saved_to)
    try:
        assert saved.parent == Path(tempfile.gettempdir()) and str(saved) in str(err)
        assert "No space left on device" in str(err) and not out_dir.exists()
        tok = Tokenizer.from_files(saved / "vocab.json", saved / "merges.txt")
        assert (tok.vocab, tok.merges, tok.special_tokens) == (vocab, merges, ["<|endoftext|>"])
    finally:
        shutil.rmtree(saved)
    assert cli.main(["train", str(workdir / "corpus.txt"), "--vocab-size", "300", "--out", str(out_dir)]) == 2
    line = capsys.readouterr().err.strip()
    rescue = line.split("it was saved to ")[1].split(" instead")[0]
    shutil.rmtree(rescue)
    assert line.startswith("bpe-numba train: error: could not write the model to") and "\n" not in line


def test_report_caps_giant_tokens(tmp_path, capsys):
    """One 200 KB run of "a" is one pre-token, which its merges make into one token of 200,000 bytes: the
    report shows 60 characters of each long token and its length, not the token."""
    from bpe_numba import cli

    path = tmp_path / "run.txt"
    path.write_bytes(b"a" * 200_000)
    assert cli.main(["train", str(path), "--vocab-size", "300", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert len(out) < 4000
    assert f"200,000 bytes  {'a' * 60!r}... (first 60 characters)" in out
    assert cli.main(["train", str(path), "--vocab-size", "300", "--workers", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    top = report["longest_tokens"][0]
    assert top == {"id": top["id"], "bytes": 200_000, "text": "a" * 60, "truncated": True}


def test_inspect_absurd_vocab_id_is_one_line(trained, workdir, package_env, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    vocab = json.loads((workdir / "model" / "vocab.json").read_text(encoding="utf-8"))
    vocab["Ġcat"] = 10**11
    (model / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=1), encoding="utf-8")
    (model / "merges.txt").write_bytes((workdir / "model" / "merges.txt").read_bytes())
    out = run(["inspect", str(model)], package_env, tmp_path)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{model / 'vocab.json'}:" in lines[0] and "'Ġcat'" in lines[0]
    assert "100000000000" in lines[0] and "MemoryError" not in out.stderr


def test_stdin_pipe_as_input_is_refused(package_env):
    """`cat corpus | bpe-numba train /dev/stdin` once trained on 0 bytes and exited 0: a pipe cannot be cut
    into chunks or read twice, so it is one line naming it, exit 2."""
    proc = subprocess.run([sys.executable, "-m", "bpe_numba", "train", "/dev/stdin"], input=b"some text " * 100,
                          capture_output=True, env=package_env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "/dev/stdin" in lines[0] and "FIFO" in lines[0], lines
