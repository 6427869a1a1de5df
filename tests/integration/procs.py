"""Finding a test's own child processes in /proc, and waiting for a condition: shared by
the integration tests that check netplay kills what it started."""

import os
import signal
import time


def processes_with(marker: str) -> list[int]:
    """Pids whose command line has `marker` as one of its arguments."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if marker.encode() in argv:
            found.append(int(entry))
    return found


def wait_for(predicate, timeout: float) -> bool:
    """Polls `predicate` until it holds or `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def kill_all_with(marker: str) -> None:
    """SIGKILLs whatever a test left running with `marker` in its command line."""
    for pid in processes_with(marker):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
