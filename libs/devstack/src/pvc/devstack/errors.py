"""The one error the dev stack raises."""

from __future__ import annotations

from pathlib import Path


class StackError(RuntimeError):
    """A component failed to start or stop; carries the tail of its output."""

    def __init__(self, message: str, *, tail: str = "", log_path: Path | None = None) -> None:
        self.message = message
        self.tail = tail
        self.log_path = log_path
        text = message
        if tail:
            source = f" of {log_path}" if log_path is not None else ""
            text += f"\n--- last lines{source} ---\n{tail}\n---"
        super().__init__(text)
