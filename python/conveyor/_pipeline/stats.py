"""Per-stage statistics of a run: where the time went and which stage limits it."""

__all__ = ["StageStats", "PipelineStats"]


class StageStats:
    """One stage, all its replicas together: ``name``, ``replicas``, ``items`` finished,
    ``busy_seconds`` computing, ``input_wait_seconds`` waiting for input,
    ``output_wait_seconds`` waiting for a free slot (all summed over replicas),
    ``items_per_second`` over the run and ``utilization`` (busy time per replica over
    the run's wall time: 1 means always computing)."""

    __slots__ = ("name", "replicas", "items", "busy_seconds", "input_wait_seconds",
                 "output_wait_seconds", "items_per_second", "utilization")

    def __init__(self, name, replicas, items, busy, input_wait, output_wait, seconds):
        self.name = name
        self.replicas = replicas
        self.items = items
        self.busy_seconds = busy
        self.input_wait_seconds = input_wait
        self.output_wait_seconds = output_wait
        self.items_per_second = items / seconds if seconds > 0 else 0.0
        self.utilization = busy / replicas / seconds if seconds > 0 else 0.0

    def __repr__(self):
        return (f"StageStats({self.name!r}, replicas={self.replicas}, items={self.items}, "
                f"busy={self.busy_seconds:.3f}s, utilization={self.utilization:.2f})")


class PipelineStats:
    """Statistics of a run: ``stages`` (StageStats, source first, sink last), ``seconds``
    of wall time, ``shared_memory_bytes`` held by its slots and channels, ``start``
    ("fork" or "spawn"), and ``bottleneck``, the name of the stage with the highest
    utilization (the one to speed up or replicate). ``str()`` is a table."""

    __slots__ = ("stages", "seconds", "shared_memory_bytes", "start")

    def __init__(self, stages, seconds, shared_memory_bytes, start):
        self.stages = stages
        self.seconds = seconds
        self.shared_memory_bytes = shared_memory_bytes
        self.start = start

    @property
    def bottleneck(self):
        """The name of the stage with the highest utilization (None without stages)."""
        if not self.stages:
            return None
        return max(self.stages, key=lambda s: s.utilization).name

    def __getitem__(self, name):
        """The StageStats of the stage called `name` (KeyError if none)."""
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)

    def __str__(self):
        lines = ["stage          repl   items   busy s  in-wait s  out-wait s   items/s  util"]
        for s in self.stages:
            name = s.name if len(s.name) <= 14 else s.name[:13] + "…"
            lines.append(f"{name:<14}{s.replicas:5d}{s.items:8d}{s.busy_seconds:9.3f}"
                         f"{s.input_wait_seconds:11.3f}{s.output_wait_seconds:12.3f}"
                         f"{s.items_per_second:10.1f}{s.utilization:6.2f}")
        lines.append(f"{self.start}, {self.seconds:.3f} s, shared memory "
                     f"{self.shared_memory_bytes >> 20} MiB; bottleneck: {self.bottleneck or '-'}")
        return "\n".join(lines)

    def __repr__(self):
        return f"<PipelineStats {self.seconds:.3f} s, bottleneck {self.bottleneck!r}>"
