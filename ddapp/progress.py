"""Job status -> the one line of text the progress panel shows."""
from __future__ import annotations

from ddcore.runstore import Status


def duration(seconds: float | None) -> str:
    """12 s, 3 min 05 s, 1 h 02 min; '' when unknown."""
    if seconds is None or seconds < 0:
        return ""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


def describe(status: Status) -> str:
    """e.g. 'running · distill · iteration 120/300 · loss 0.0123 · about 1 min 20 s left'."""
    parts = [status.state]
    if status.stage:
        parts.append(status.stage)
    if status.state == "running":
        if status.iterations:
            parts.append(f"iteration {status.iteration}/{status.iterations}")
        if status.loss is not None:
            parts.append(f"loss {status.loss:.4g}")
        if status.eta_seconds is not None:
            parts.append(f"about {duration(status.eta_seconds)} left")
    elif status.state == "done" and status.started and status.finished:
        parts.append(f"took {duration(status.finished - status.started)}")
    return " · ".join(parts)
