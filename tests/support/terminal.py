"""What the tests' pseudo-terminal drivers share: a command whose terminal's master
end is ``master``, everything read from it so far in ``output``."""

from __future__ import annotations

import contextlib
import os
import select
import subprocess


class Terminal:
    """Subclasses open the terminal and start ``proc`` on it (and set ``output``)."""

    master: int
    proc: subprocess.Popen[bytes]
    output: bytes

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def _read(self, timeout: float) -> bool:
        """Appends what the terminal has within ``timeout`` (at most 0.5 s) to
        ``output``; False once it is closed."""
        ready, _, _ = select.select([self.master], [], [], min(timeout, 0.5))
        if not ready:
            return True
        try:
            data = os.read(self.master, 4096)
        except OSError:
            return False
        self.output += data
        return bool(data)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        with contextlib.suppress(OSError):
            os.close(self.master)
