"""The console (s2lbench/common/console.py): one live view in a terminal, plain lines elsewhere, a full log
file per invocation, -v / -q. The end-to-end cases run ``s2lbench run`` on a tiny grid, once under a
pseudo-terminal (its screen rendered by a small terminal emulator) and once redirected to a file."""

from __future__ import annotations

import json
import logging
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
import warnings
from pathlib import Path

import pytest
import yaml
from test_runner import TINY as RUNNER_TINY

from s2lbench.common import console

#: the runner tests' tiny grid, logging every 2 steps (the status line shows steps and loss), no full reference
TINY = {**json.loads(json.dumps(RUNNER_TINY)), "name": "tiny-console", "full_reference": False}
for _block in (TINY["proxy"], TINY["targets"][0]):
    _block["train"]["logging_steps"] = 2
EVERY_STAGE = ("gym", "proxy", "signals", "selection", "finetune", "evaluation")
#: what other libraries print when left alone: none of it may reach the screen
FOREIGN = ("{'loss'", "{'train_runtime'", "Loading weights", "Writing model shards", "it/s]", "s/it]",
           "[transformers]", "Traceback")
SCREEN_LINE = re.compile(r"^\d\d:\d\d:\d\d ")


@pytest.fixture
def restore_console():
    yield
    console.get().reset()


# ----------------------------------------------------------------------------------------- unit cases


def test_log_file_stamps_cell_and_stage_and_keeps_lines_from_before_it_was_opened(tmp_path, restore_console):
    console.configure(console.NORMAL, stream=open(os.devnull, "w"), interactive=False)
    log = logging.getLogger("s2lbench.test")
    log.info("before the folder was known")
    path = console.log_to(tmp_path, "run")
    with console.cell("t__s2l__10%__s0", "t · s2l · 10% · seed 0"), console.stage("finetune"):
        log.debug("a debug line")
    log.info("outside")
    text = path.read_text()
    assert path.parent == tmp_path / "logs" and re.fullmatch(r"\d{8}-\d{6}-run\.log", path.name)
    assert "[-] s2lbench.test: before the folder was known" in text
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} DEBUG +\[t__s2l__10%__s0/finetune\] "
                     r"s2lbench.test: a debug line$", text, re.M)
    assert "[-] s2lbench.test: outside" in text


def test_second_invocation_gets_its_own_file(tmp_path, restore_console):
    console.configure(console.NORMAL, stream=open(os.devnull, "w"), interactive=False)
    first = console.log_to(tmp_path, "run")
    console.configure(console.NORMAL, stream=open(os.devnull, "w"), interactive=False)
    second = console.log_to(tmp_path, "run")
    assert first != second and first.exists() and second.exists()


@pytest.mark.parametrize("verbosity, shown, hidden", [
    (console.QUIET, ["a warning"], ["a notice", "an info line", "a debug line"]),
    (console.NORMAL, ["a warning", "a notice"], ["an info line", "a debug line"]),
    (console.VERBOSE, ["a warning", "a notice", "an info line", "a debug line"], []),
])
def test_verbosity_levels_choose_what_the_terminal_shows(tmp_path, restore_console, verbosity, shown, hidden):
    stream = (tmp_path / "terminal.txt").open("w")
    console.configure(verbosity, stream=stream, interactive=False)
    path = console.log_to(tmp_path, "run")
    log = logging.getLogger("s2lbench.test")
    log.warning("a warning")
    console.notice(log, "a notice")
    log.info("an info line")
    log.debug("a debug line")
    stream.flush()
    terminal = (tmp_path / "terminal.txt").read_text()
    assert all(line in terminal for line in shown), terminal
    assert not any(line in terminal for line in hidden), terminal
    assert all(line in path.read_text() for line in shown + hidden)  # the file keeps everything, always


def test_known_noise_goes_to_the_log_file_only_and_a_new_warning_still_shows(tmp_path, restore_console):
    stream = (tmp_path / "terminal.txt").open("w")
    console.configure(console.NORMAL, stream=stream, interactive=False)
    path = console.log_to(tmp_path, "run")
    logging.getLogger("transformers.utils.generic").warning(
        "`past_key_values`/`cache_params` are deprecated. Use `cache` instead.")
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.warn("a brand-new deprecation nobody listed", FutureWarning, stacklevel=1)
    stream.flush()
    terminal = (tmp_path / "terminal.txt").read_text()
    assert "cache_params" not in terminal
    assert "a brand-new deprecation nobody listed" in terminal
    assert re.search(r"DEBUG .*transformers.utils.generic: `past_key_values`", path.read_text())


def test_non_terminal_output_is_plain_and_prints_the_status_every_interval(tmp_path, restore_console, monkeypatch):
    monkeypatch.setattr(console, "PROGRESS_SECONDS", 0.0)
    stream = (tmp_path / "terminal.txt").open("w")
    console.configure(console.NORMAL, stream=stream, interactive=False)
    with console.grid(1), console.cell("c", "t · s2l · 10% · seed 0"):
        with console.stage("finetune"), console.activity(total=4) as work:
            for step in range(4):
                work.update(step + 1, loss=0.25)
                console.tick()
    stream.flush()
    text = (tmp_path / "terminal.txt").read_text()
    assert "\r" not in text and "\x1b" not in text
    assert re.search(r"cells 0/1 .* \| t · s2l · 10% · seed 0 — fine-tune 4/4 steps \(100%\).* loss 0.25", text), text


def test_status_line_names_the_work_as_the_user_does(restore_console):
    console.configure(console.NORMAL, stream=open(os.devnull, "w"), interactive=False)
    with console.cell("target-l__s2l__10%__s0", "target-l · s2l · 10% · seed 0"), console.stage("finetune"):
        with console.activity(total=360) as work:
            work.update(125, loss=0.114)
            line = console.get().status_line()
    assert line.startswith("target-l · s2l · 10% · seed 0 — fine-tune 125/360 steps (35%)")
    assert line.endswith("loss 0.114")


def test_grid_estimate_counts_only_cells_that_computed_and_does_not_grow_while_a_cell_trains(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(console.time, "perf_counter", lambda: clock[0])
    grid = console.GridProgress(total=6)
    for _ in range(3):  # three cells found in the cache: a second each
        clock[0] += 1.0
        grid.finish_cell(failed=False)
    assert grid.seconds_left() is None and "left" not in grid.describe()  # nothing measured yet
    clock[0] += 100.0  # a cell that trained
    grid.cell_worked = True
    grid.finish_cell(failed=False)
    assert grid.seconds_left() == pytest.approx(200.0)  # two cells left at 100 s, not (103 s / 4) x 2
    estimates = []
    for _ in range(4):  # the next cell trains: the estimate falls, never grows
        clock[0] += 20.0
        estimates.append(grid.seconds_left())
    assert estimates == sorted(estimates, reverse=True) and estimates[-1] == pytest.approx(120.0)
    clock[0] += 500.0  # a slow cell: the estimate stops at the one cell still to come
    assert grid.seconds_left() == pytest.approx(100.0)
    assert "~1:40 left" in grid.describe()


def test_a_stage_computed_in_a_cells_child_counts_in_the_parents_estimate(restore_console):
    console.configure(console.NORMAL, stream=open(os.devnull, "w"), interactive=False)
    parent = console.get()
    with parent.grid(2) as grid:
        sent = []
        child = console.Console.__new__(console.Console)
        child.__dict__.update(parent.__dict__)
        child._relay = sent.append  # what isolation's child does: relay, never draw
        child.stage_done(logging.getLogger("t"), "finetune", "0" * 16, 3.0)
        assert ("worked",) in sent and not grid.cell_worked
        parent.relayed(("worked",))
        assert grid.cell_worked


def _computes_a_stage(payload):
    console.get().stage_done(logging.getLogger("s2lbench.test"), "finetune", "0" * 16, 2.0)
    return "answered"


def test_an_isolated_cell_that_computed_counts_in_the_estimate_and_still_answers(restore_console):
    from s2lbench.executors.isolation import run_isolated

    console.configure(console.NORMAL, stream=open(os.devnull, "w"), interactive=False)
    with console.get().grid(2) as grid:
        assert run_isolated(_computes_a_stage, None, "fork") == "answered"
        assert grid.cell_worked


def test_a_worker_writes_each_cell_to_its_own_log(tmp_path, restore_console):
    log = logging.getLogger("s2lbench.test")
    with console.worker_logs(tmp_path):
        log.info("shared work")
        with console.cell("t__random__20%__s0"):
            log.info("cell work")
    cells = tmp_path / "logs" / "cells"
    assert "cell work" in (cells / "t__random__20%__s0.log").read_text()
    assert "shared work" in (cells / "shared.log").read_text()
    assert "cell work" not in (cells / "shared.log").read_text()


# ----------------------------------------------------------------------------------------- end to end


class Screen:
    """Just enough of a terminal to replay what rich and our lines write: text, CR, LF, cursor up (CSI A),
    erase line (CSI K), colours and cursor visibility. Anything else is recorded in ``unknown``."""

    def __init__(self):
        self.lines: list[str] = [""]
        self.row = self.col = 0
        self.unknown: list[str] = []

    def feed(self, text: str) -> None:
        i = 0
        while i < len(text):
            ch = text[i]
            if ch == "\x1b":
                m = re.match(r"\x1b\[([0-9;?]*)([A-Za-z])", text[i:])
                if not m:
                    self.unknown.append(repr(text[i:i + 8]))
                    i += 1
                    continue
                args, op = m.groups()
                if op == "A":
                    self.row = max(0, self.row - int(args or 1))
                elif op == "K":
                    self.lines[self.row] = "" if args == "2" else self.lines[self.row][:self.col]
                elif op in "mhl":
                    pass
                else:
                    self.unknown.append(m.group(0))
                i += m.end()
                continue
            if ch == "\r":
                self.col = 0
            elif ch == "\n":
                self.row += 1
                self.col = 0
                if self.row == len(self.lines):
                    self.lines.append("")
            else:
                line = self.lines[self.row].ljust(self.col)
                self.lines[self.row] = line[:self.col] + ch + line[self.col + 1:]
                self.col += 1
            i += 1

    def text(self) -> list[str]:
        return [line.rstrip() for line in self.lines]


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "COLUMNS", "LINES"))}
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                "TOKENIZERS_PARALLELISM": "false", "TERM": "xterm-256color"}, **(extra or {}))
    env.pop("S2LBENCH_PLAIN", None)
    return env


def _cli() -> list[str]:
    return [sys.executable, "-m", "s2lbench.cli"]


def run_in_terminal(argv: list[str], cwd: Path, columns: int = 160, timeout: float = 900) -> tuple[int, str]:
    """``argv`` with a pseudo-terminal of ``columns`` as stdin, stdout and stderr; (exit code, raw output)."""
    master, slave = pty.openpty()
    import fcntl

    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=_env(),
                            start_new_session=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1.0)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    else:
        proc.kill()
    os.close(master)
    return proc.wait(timeout=60), b"".join(chunks).decode("utf-8", "replace")


@pytest.fixture(scope="module")
def grid_config(tmp_path_factory):
    folder = tmp_path_factory.mktemp("console")
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(json.loads(json.dumps(TINY))))
    return path


@pytest.fixture(scope="module")
def terminal_run(grid_config):
    out = grid_config.parent / "tty"
    code, raw = run_in_terminal([*_cli(), "run", str(grid_config), "--out", str(out)], grid_config.parent)
    return code, raw, out


@pytest.mark.integration
def test_terminal_run_shows_a_clean_live_view(terminal_run):
    code, raw, out = terminal_run
    screen = Screen()
    screen.feed(raw)
    lines = screen.text()
    assert code == 0, "\n".join(lines[-40:])
    assert not screen.unknown, screen.unknown
    assert "\x1b[1A" in raw and "\x1b[2K" in raw  # the live view redraws in place ...
    body = lines[:next(i for i, line in enumerate(lines) if re.match(r"^\d+ cells done", line))]
    for line in filter(None, body):  # ... and every message above it is whole: one stamped line each
        assert SCREEN_LINE.match(line), f"broken or foreign line on screen: {line!r}\n" + "\n".join(body)
    assert not [line for line in lines if any(f in line for f in FOREIGN)]
    shown = "\n".join(lines)
    assert "cell t__random__20%__s0 done" in shown and "cell t__s2l__20%__s0 done" in shown
    assert re.search(r"fine-tune for t · s2l · 20% · seed 0: computed in", shown)
    assert re.search(r"^\s+log: +.*/logs/\d{8}-\d{6}-run\.log$", shown, re.M)  # the closing summary's paths
    assert re.search(r"^\s+leaderboard: +.*leaderboard\.md$", shown, re.M)
    # the live view itself appeared: the grid line and a status line naming the cell and the steps
    assert re.search(r"cells \d/2 · \d+:\d\d elapsed", raw)
    assert re.search(r"t · (random|s2l) · 20% · seed 0 — fine-tune \d+/8 steps", raw)


@pytest.mark.integration
def test_log_file_holds_every_stage_with_the_cell_on_every_line(terminal_run):
    _, _, out = terminal_run
    logs = list((out / "logs").glob("*-run.log"))
    assert len(logs) == 1
    text = logs[0].read_text()
    records = [line for line in text.splitlines() if re.match(r"^\d{4}-\d\d-\d\d ", line)]
    assert records and all(re.match(r"^\S+ \S+ [A-Z]+ +\[[^\]]+\] \S+: ", line) for line in records)
    stamps = {re.match(r"^\S+ \S+ [A-Z]+ +\[([^\]]+)\]", line).group(1) for line in records}
    for stage in EVERY_STAGE:  # the gym loads before the first cell; the rest inside one
        assert any(s == stage or s.endswith("/" + stage) for s in stamps), (stage, sorted(stamps))
    assert "t__s2l__20%__s0/finetune" in stamps and "t__random__20%__s0/evaluation" in stamps
    # the model being fine-tuned and the subset it trains on, not the folder it starts from
    assert re.search(r"training target t \(gym-proxy\) .* on s2l-60 \(60 examples\)", text)
    assert re.search(r"finished training target t \(gym-proxy\) on random-60 in", text)
    assert "trainer log at step" in text  # the Trainer's own dicts are in the file, not on the screen


@pytest.mark.integration
def test_redirected_run_is_plain_lines(grid_config, tmp_path):
    out = tmp_path / "plain"
    with open(tmp_path / "output.txt", "w") as f:
        code = subprocess.call([*_cli(), "run", str(grid_config), "--out", str(out), "--only", "random"],
                               stdout=f, stderr=subprocess.STDOUT, env=_env({"S2LBENCH_PROGRESS_SECONDS": "0"}))
    text = (tmp_path / "output.txt").read_text()
    assert code == 0, text
    assert "\r" not in text and "\x1b" not in text
    assert not [line for line in text.splitlines() if any(f in line for f in FOREIGN)]
    assert "cell t__random__20%__s0 done" in text
    assert re.search(r"cells 0/1 .* \| t · random · 20% · seed 0 — fine-tune \d+/8 steps", text)  # periodic status


@pytest.mark.integration
@pytest.mark.parametrize("flag", ["-q", "-v"])
def test_quiet_and_verbose_on_a_finished_grid(terminal_run, grid_config, flag):
    _, _, out = terminal_run
    result = subprocess.run([*_cli(), flag, "run", str(grid_config), "--out", str(out)], capture_output=True,
                            text=True, env=_env())
    assert result.returncode == 0, result.stderr
    assert "| selector" in result.stdout.lower() or "|" in result.stdout  # the final table, always
    if flag == "-q":
        assert all(re.match(r"^\d\d:\d\d:\d\d (warning|error): ", line) for line in result.stderr.splitlines())
        assert "cells done" not in result.stdout and "log:" not in result.stdout
    else:
        assert re.search(r"INFO +\[t__s2l__20%__s0\] s2lbench\.grid\.runner: cell t__s2l__20%__s0: done already",
                         result.stderr), result.stderr[-3000:]
        assert "log:" in result.stdout


def test_cluster_workers_write_their_cells_logs(tmp_path, restore_console):
    """What a SLURM job (``Pinned``) and a Ray task (``_call``) run: the cell's lines land in its log."""
    from s2lbench.executors.base import Pinned
    from s2lbench.executors.ray_executor import _call

    def cell_work(cell_id: str) -> str:
        with console.cell(cell_id):
            logging.getLogger("s2lbench.test").info("working on %s", cell_id)
        return cell_id

    assert Pinned(cell_work, None, tmp_path)("a__random__10%__s0") == "a__random__10%__s0"
    assert _call(cell_work, ("b__s2l__10%__s0",), None, str(tmp_path)) == "b__s2l__10%__s0"
    cells = tmp_path / "logs" / "cells"
    assert "working on a__random__10%__s0" in (cells / "a__random__10%__s0.log").read_text()
    assert "working on b__s2l__10%__s0" in (cells / "b__s2l__10%__s0.log").read_text()


def test_a_foreign_tqdm_bar_stays_off_the_screen():
    """A plugin's or library's own tqdm bar, made after the console is set up, draws nothing."""
    code = ("import sys; from s2lbench.common import console; console.configure(0, interactive=False)\n"
            "from tqdm.auto import tqdm\n"
            "for _ in tqdm(range(3), desc='foreign bar', file=sys.stderr): pass\n")
    env = {k: v for k, v in _env().items() if k != "TQDM_DISABLE"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "foreign bar" not in result.stderr and "\r" not in result.stderr
