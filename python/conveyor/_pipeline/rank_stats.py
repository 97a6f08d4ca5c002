"""What Pipeline.run_across_ranks returns: the result, and per-rank statistics of its
segments and links (rank 0 has every rank's, gathered from their end-of-run reports;
another rank has only its own)."""

__all__ = ["RanksRun", "RankStats"]


class RankStats:
    """One rank of a run across ranks: ``rank``; ``segments``, a list of dicts, one per
    segment it ran (``index``, ``seconds``, and ``stages``: dicts of ``name``, ``items``,
    ``busy_seconds``, the sink included); ``links``, a list of dicts, one per link end it
    drove (``channel``, ``peer``, ``sending``, ``frames``, ``bytes``, ``blocked_seconds``);
    ``failure``: None, or a dict saying what failed on it (``kind`` "own" for its own
    stage or reduce, "link" when a link to another rank broke, "stopped", "dead" when it
    sent no report; ``message``, ``stage``, ``item``, ``type``)."""

    __slots__ = ("rank", "segments", "links", "failure")

    def __init__(self, rank, segments, links, failure):
        self.rank, self.segments, self.links, self.failure = rank, segments, links, failure

    @classmethod
    def from_report(cls, report):
        """The RankStats of a rank's end-of-run report: `report` is the dict to_report made
        (as decoded from JSON on rank 0). Missing ``segments`` and ``links`` read as empty
        lists, a missing ``failure`` as None. Cost: no copy of the lists. Raises KeyError
        when ``rank`` is absent."""
        return cls(report["rank"], report.get("segments", []), report.get("links", []),
                   report.get("failure"))

    def to_report(self):
        """This rank's statistics as a plain dict of ``rank``, ``segments``, ``links`` and
        ``failure`` (JSON-serializable, sent to rank 0 at the end of a run; from_report
        reads it back). Cost: one small dict, the lists are shared, not copied. Never
        fails."""
        return {"rank": self.rank, "segments": self.segments, "links": self.links,
                "failure": self.failure}

    def __repr__(self):
        items = [st["items"] for seg in self.segments for st in seg["stages"][-1:]]
        return (f"RankStats(rank={self.rank}, segments={len(self.segments)}, sink items={items}, "
                f"links={[(l['channel'], l['frames']) for l in self.links]}, "
                f"failure={None if self.failure is None else self.failure.get('kind')})")


class RanksRun:
    """``result``: what the reduce produced (rank 0; None on other ranks); ``ranks``: a
    list indexed by rank of RankStats (None for the ranks this one has no report of)."""

    __slots__ = ("result", "ranks")

    def __init__(self, result, ranks):
        self.result, self.ranks = result, ranks

    def __repr__(self):
        return f"RanksRun(result={self.result!r}, ranks={self.ranks!r})"
