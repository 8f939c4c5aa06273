"""Node processes: spawn, pipe plumbing inside the event loop, stderr logs, kill and crash reports.

Owns: one OS process per server node (maelstrom-spec §2): `[abs(bin), *args]`, cwd /tmp (the jar's
java.io.tmpdir), inherited environment, three non-blocking pipes served by the runner's loop.
- stdout: split into lines and handed to the network; after the first bad line the fd is removed
  from the loop but kept open (the node blocks once the pipe fills, as under the jar).
- stderr: each line appended to `node-logs/<id>.log` (flushed after every read), echoed at INFO on
  the console with --log-stderr, and kept in a ring of the last `debug_lines_max` lines.
- stdin: framed messages are buffered and written at the end of the loop pass, or as soon as
  `stdin_flush_bytes` are buffered, and when the fd is writable again; under light load (the
  last pass delivered at most `eager_pass_messages_max` messages) each is written at once. A
  broken pipe (dead node) drops them silently. `blocked()` reports when the buffer holds more
  than `stdin_buffer_max_bytes`, and the network then stops taking messages for this node off
  its inbox.
- teardown: SIGKILL, then wait up to `kill_wait_s`. A process that had already exited is a crash,
  unless the nemesis killed it (below).
- [extension] nemesis faults: `nemesis_kill()` SIGKILLs the process, reaps it, reads the rest of
  its stderr and closes its pipes; the node is then `down` (expected dead: teardown does not call
  it a crash) until `restart()` spawns the same command line again with fresh pipes (the stderr log
  is appended to; `restarts` counts them). `pause()`/`resume()` send SIGSTOP/SIGCONT.
  While down, `deliver` drops messages (the network also stops routing to it).

Invariants: buffers are bounded (`stdin_buffer_max_bytes` for back-pressure, `partial_line_max_bytes`
for a line without newline); the loop never blocks on a pipe.
May not touch: routing decisions (the network's), the history, the workload.
"""
from __future__ import annotations

import collections
import logging
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

from .eventloop import Loop

log = logging.getLogger("maelstrom.process")

debug_lines_max = 32
read_chunk_bytes = 1 << 16
stdin_buffer_max_bytes = 1 << 20
partial_line_max_bytes = 64 << 20
kill_wait_s = 5.0
drain_reads_max = 64
stdin_flush_bytes = 4096   # deliver() writes a node's buffered stdin once it holds this much
# A pass that delivered at most this many messages to the nodes is light load: in the next, a
# message to a node is written at once, not at the end of the pass. Under heavy load the
# batches stay whole (an early write there splits the nodes' reads and replies into more, smaller
# ones: null-sat lost 10-20% with it on in every pass).
eager_pass_messages_max = 12


class NodeProcess:
    def __init__(self, loop: Loop, node_id: str, command: list[str], log_path: Path, *,
                 log_stderr: bool = False):
        self.loop = loop
        self.node_id = node_id
        self.command = command
        self.log_path = log_path
        self.log_stderr = log_stderr
        self.proc: subprocess.Popen | None = None
        self.on_line: Callable[[str, bytes], bool] | None = None   # set by the runner
        # or, preferred when set: route a chunk's lines, return how many were good (network)
        self.on_lines: Callable[[str, list[bytes]], int] | None = None
        self.on_resume: Callable[[str], None] | None = None        # network.resume
        self.stdout_lines: collections.deque[bytes] = collections.deque(maxlen=debug_lines_max)
        self.stderr_lines: collections.deque[bytes] = collections.deque(maxlen=debug_lines_max)
        self._out = bytearray()
        self._out_partial = b""
        self._err_partial = b""
        self._log_file = None
        self.stdin_closed = False
        self.stdout_closed = False
        self.stdout_bad = False
        self.exit_noticed = False
        self.killed = False
        self.down = False        # killed by the nemesis and not restarted yet
        self.paused = False      # SIGSTOPped by the nemesis
        self.restarts = 0
        self._stdin_writer_on = False
        self.batch = 0           # messages delivered in this loop pass
        self.eager = False       # each message is written at once (light load; from start())

    # -- start ------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._log_file is None:
            self._log_file = open(self.log_path, "ab", buffering=0)
        self._stdin_writer_on = False   # whether the loop waits for stdin to be writable
        self.eager = True
        self.proc = subprocess.Popen(
            self.command, cwd=tempfile.gettempdir(), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0, close_fds=True)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            os.set_blocking(stream.fileno(), False)
        self.loop.set_fd(self.proc.stdout.fileno(), self._read_stdout, None)
        self.loop.set_fd(self.proc.stderr.fileno(), self._read_stderr, None)
        log.info("Started %s as pid %d: %s", self.node_id, self.proc.pid, " ".join(self.command))

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def exit_status(self) -> int | None:
        return self.proc.poll() if self.proc else None

    # -- [extension] nemesis faults ---------------------------------------------------------------
    def nemesis_kill(self) -> int | None:
        """SIGKILL on purpose; the node is `down` until restart(). Returns the exit status it had
        before the kill (None if it was running, as expected)."""
        assert self.proc is not None and not self.down, self.node_id
        before = self.proc.poll()
        if before is None:
            self._sigkill_and_wait()
        # What it wrote before dying is still in the pipes: route its last lines, log its stderr.
        self.killed = True
        for _ in range(drain_reads_max):
            if self.stdout_closed or self.stdout_bad:
                break
            self._read_stdout()
        self.drain_stderr()
        if self._err_partial:
            self._stderr_lines([self._err_partial])
            self._err_partial = b""
        self._close_pipes()
        self._out.clear()
        self._out_partial = b""
        self.stdin_closed = True
        self.down = True
        self.paused = False
        return before

    def restart(self) -> None:
        """Start the same command line again after nemesis_kill()."""
        assert self.down, self.node_id
        self.stdin_closed = False
        self.stdout_closed = False
        self.stdout_bad = False
        self.exit_noticed = False
        self.killed = False
        self.down = False
        self.restarts += 1
        self.start()

    def pause(self) -> None:
        assert self.proc is not None and not self.down, self.node_id
        try:
            os.kill(self.proc.pid, signal.SIGSTOP)
        except ProcessLookupError:
            pass   # it died on its own: teardown reports it
        self.paused = True

    def resume(self) -> None:
        if self.proc is not None and self.paused:
            try:
                os.kill(self.proc.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.paused = False

    # -- stdin ------------------------------------------------------------------------------------
    def deliver(self, framed: bytes) -> None:
        """Queue one message line for the node's stdin (flushed at the end of the loop pass, or
        now if `stdin_flush_bytes` are waiting, or, when `eager`, now)."""
        if self.stdin_closed:
            return
        out = self._out
        self.batch += 1
        out += framed
        out += b"\n"
        if (self.eager or len(out) >= stdin_flush_bytes) and not self._stdin_writer_on:
            # The node starts on these while the router routes the rest of the pass, instead of
            # both taking turns on a whole pass's batch: under light load (`eager`, see
            # `eager_pass_messages_max`) each message, as the jar writes them (null-2n: about
            # 1.3 x the ok ops/s), else every `stdin_flush_bytes` (echo: 80-90k -> 110-190k
            # msgs/s). (Not while a full pipe is awaited: the loop writes once it drains.)
            self.flush()

    def blocked(self) -> bool:
        return len(self._out) > stdin_buffer_max_bytes

    def flush(self) -> None:
        """Write as much buffered stdin as the pipe takes; wait for writability for the rest."""
        out = self._out
        if not out or self.stdin_closed:
            return
        was_blocked = len(out) > stdin_buffer_max_bytes
        fd = self.proc.stdin.fileno()
        try:
            written = os.write(fd, out)
            del out[:written]
        except BlockingIOError:
            pass
        except (BrokenPipeError, OSError):
            # The node died or closed stdin: messages to it vanish (as under the jar).
            self.stdin_closed = True
            out.clear()
            self._set_stdin_writer(False)
            return
        self._set_stdin_writer(bool(out))
        if was_blocked and len(out) <= stdin_buffer_max_bytes and self.on_resume is not None:
            self.on_resume(self.node_id)

    def _set_stdin_writer(self, want: bool) -> None:
        if want == self._stdin_writer_on:
            return   # as registered already (the common case: the pipe took everything)
        self._stdin_writer_on = want
        fd = self.proc.stdin.fileno()
        self.loop.set_fd(fd, None, self.flush if want else None)

    # -- stdout -----------------------------------------------------------------------------------
    def _read_stdout(self) -> None:
        fd = self.proc.stdout.fileno()
        try:
            chunk = os.read(fd, read_chunk_bytes)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.loop.set_fd(fd, None, None)
            self.stdout_closed = True
            self._notice_exit()
            return
        data = self._out_partial + chunk if self._out_partial else chunk
        lines = data.split(b"\n")
        self._out_partial = lines.pop()
        if len(self._out_partial) > partial_line_max_bytes:
            lines.append(self._out_partial)
            self._out_partial = b""
        if not lines:
            return
        on_lines = self.on_lines
        if on_lines is None:
            on_line = self.on_line
            node_id = self.node_id
            for line in lines:
                self.stdout_lines.append(line)
                if not on_line(node_id, line):
                    self._stdout_bad(fd)
                    return
            return
        # One call routes the whole chunk (the network's per-line work, without a call per line).
        try:
            routed = on_lines(self.node_id, lines)
        except BaseException:
            self.stdout_lines.extend(lines)
            raise
        if routed < len(lines):
            self.stdout_lines.extend(lines[:routed + 1])   # up to the bad line, as line by line
            self._stdout_bad(fd)
        else:
            self.stdout_lines.extend(lines)

    def _stdout_bad(self, fd: int) -> None:
        self.stdout_bad = True
        self.loop.set_fd(fd, None, None)   # read nothing more; keep the pipe open

    def _notice_exit(self) -> None:
        if self.exit_noticed or self.killed or self.down:
            return
        status = None
        for _ in range(20):  # stdout EOF usually means exit; give the kernel a moment
            status = self.proc.poll()
            if status is not None:
                break
            time.sleep(0.005)
        if status is not None:
            self.exit_noticed = True
            log.warning("Node %s exited with status %s during the test", self.node_id, status)
        else:
            log.warning("Node %s closed its stdout", self.node_id)

    # -- stderr -----------------------------------------------------------------------------------
    def _read_stderr(self) -> None:
        fd = self.proc.stderr.fileno()
        try:
            chunk = os.read(fd, read_chunk_bytes)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.loop.set_fd(fd, None, None)
            if self._err_partial:
                self._stderr_lines([self._err_partial])
                self._err_partial = b""
            return
        data = self._err_partial + chunk if self._err_partial else chunk
        lines = data.split(b"\n")
        self._err_partial = lines.pop()
        if len(self._err_partial) > partial_line_max_bytes:
            lines.append(self._err_partial)
            self._err_partial = b""
        if lines:
            self._stderr_lines(lines)

    def _stderr_lines(self, lines: list[bytes]) -> None:
        self._log_file.write(b"\n".join(lines) + b"\n")
        self.stderr_lines.extend(lines)
        if self.log_stderr:
            for line in lines:
                log.info("%s stderr: %s", self.node_id, line.decode(errors="replace"))

    # -- teardown ---------------------------------------------------------------------------------
    def drain_stderr(self) -> None:
        """Read whatever stderr is left (non-blocking), e.g. before reporting a crash."""
        if self.proc is None:
            return
        for _ in range(64):
            try:
                chunk = os.read(self.proc.stderr.fileno(), read_chunk_bytes)
            except (BlockingIOError, OSError, ValueError):
                return
            if not chunk:
                return
            data = self._err_partial + chunk
            lines = data.split(b"\n")
            self._err_partial = lines.pop()
            if lines:
                self._stderr_lines(lines)

    def kill(self) -> int | None:
        """SIGKILL the node and wait up to kill_wait_s. Returns the exit status it had *before*
        the kill (None if it was still running, i.e. healthy, or if the nemesis killed it)."""
        if self.proc is None or self.down:
            return None
        before = self.proc.poll()
        self.killed = True
        if before is None:
            self._sigkill_and_wait()
        return before

    def _sigkill_and_wait(self) -> None:
        """SIGKILL the running process and wait for it for at most kill_wait_s."""
        try:
            os.kill(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=kill_wait_s)
        except subprocess.TimeoutExpired:
            log.warning("Node %s (pid %d) did not exit %.0f s after SIGKILL",
                        self.node_id, self.proc.pid, kill_wait_s)

    def _close_pipes(self) -> None:
        self._stdin_writer_on = False
        if self.proc is not None:
            for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                try:
                    self.loop.set_fd(stream.fileno(), None, None)
                except (ValueError, KeyError, OSError):
                    pass
                try:
                    stream.close()
                except OSError:
                    pass

    def close(self) -> None:
        self._close_pipes()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def crash_report(self, status: int) -> str:
        out = b"\n".join(self.stdout_lines).decode(errors="replace")
        err = b"\n".join(self.stderr_lines).decode(errors="replace")
        return (f"Node {self.node_id} crashed with exit status {status} before the test ended.\n"
                f"Its last {len(self.stdout_lines)} lines of STDOUT:\n{out}\n"
                f"Its last {len(self.stderr_lines)} lines of STDERR:\n{err}\n"
                f"Full STDERR logs are available in {self.log_path}")


def connect_to_network(loop, network, procs: list["NodeProcess"]) -> None:
    """Wire node processes to the network: each is registered as a destination, the lines it
    prints go to the router, and every loop pass ends by flushing what was queued on stdins."""
    for proc in procs:
        network.register_node(proc.node_id, proc.deliver, proc.blocked)
        proc.on_line = network.on_node_line
        proc.on_lines = network.on_node_lines
        proc.on_resume = network.resume

    loop.add_after_pass(lambda: end_pass(procs))


def end_pass(procs: list["NodeProcess"]) -> None:
    """At the end of a loop pass: write what each process's stdin buffer holds, and whether the
    next pass is light load (`eager_pass_messages_max`) for all of them."""
    delivered = 0
    for p in procs:
        if p._out:
            p.flush()
        delivered += p.batch
        p.batch = 0
    eager = delivered <= eager_pass_messages_max
    for p in procs:
        p.eager = eager

