"""conveyor: numpy arrays across processes in place, through shared-memory rings.

    import numpy as np, conveyor
    ring = conveyor.Ring(slots=3, shape=(500, 2000), dtype=np.float64)
    with ring.producer() as prod:                 # in one process (fork or spawn)
        for i in range(n):
            with prod.loan() as out:             # a writable view of a slot
                np.random.default_rng([2016, i]).random(out=out)  # committed at block end
    with ring.consumer() as cons:                 # in another
        for x in cons:                           # read-only views, in place, until the end
            total += x.sum()

Lifetime rule. A received array is a read-only view of its slot, and numpy cannot make
it writable. The array, or any numpy view derived from it, keeps its slot: the slot
goes back to the producer when the last view dies (frames are given back in stream
order, so a frame whose views died early waits for the older ones). Until then the
data under a view never changes, and no access crashes after close, destruction of the
ring or garbage collection. A view kept for long stalls the producer once its slot
comes round again: backpressure, never corruption. A consumer holds at most `slots`
frames; copy what you keep (``np.array(x)``) to let the stream go on.

Processes. A forked child inherits the Ring and calls ring.producer() or ring.consumer()
itself; a Producer, Consumer, Loan or frame it inherits stays its parent's (calls on it
raise WrongRole there, and its death there changes nothing). Spawned processes get the
Ring pickled by multiprocessing, unrelated ones attach a named ring by name.

Pipelines. conveyor.Pipeline(source, ...).stage(h).stage(g)... runs each stage in its
own process over shared-memory slot pools and channels (the C core's, as Swift's
Pipeline does): stages read their input in place and write their output into a slot,
nothing is pickled; run(reduce, initial) or iterate the results in order. For code
written as generator stages composed like ``f(g(h(xs)))``, ``from conveyor import
parallel_pipeline`` is a drop-in decorator that runs each stage in its own process.
Failures raise StageFailed / StageDied (PipelineError) naming the stage and item.
.external(command) runs a program as a stage (C, Swift, or Python: conveyor.serve_stage(fn)
is the whole program side), on the same slots in place.

Errors are classes per C status under ConveyorError (.status, .name), e.g. PeerDied,
Timeout (also a TimeoutError), EndOfStream, RingCorrupt, InvalidArgument (also a
ValueError). Blocking calls release the GIL and wake for signals every 20 ms.
"""

from . import _core
from ._core import (
    BadState,
    Busy,
    Closed,
    ConveyorError,
    EndOfStream,
    Exists,
    InvalidArgument,
    Misaligned,
    NotARing,
    NotSealed,
    NullPointer,
    OutOfMemory,
    Overlap,
    PeerDied,
    RingCorrupt,
    SizeOverflow,
    SystemCallFailed,
    Timeout,
    TooLarge,
    Truncated,
    Unsupported,
    VersionMismatch,
    WrongRole,
)
from ._kernels import apply, fill_uniform, get_threads, has_openmp, set_threads, sum
from ._ring import Consumer, Frame, Loan, Producer, Ring
from ._mpi_errors import MPIError, MPINotBuilt, PeerDead
from ._pipeline import (
    KernelStage,
    RankFailed,
    RankStats,
    RanksRun,
    Pipeline,
    PipelineDefinitionError,
    PipelineError,
    PipelineRun,
    PipelineStats,
    StageDied,
    StageFailed,
    StageProgramError,
    StageStats,
    kernel_stage,
    parallel_pipeline,
    serve_stage,
)

__version__ = "0.6.0"

__all__ = [
    "Ring", "Producer", "Consumer", "Loan", "Frame",
    "Pipeline", "PipelineRun", "PipelineStats", "StageStats", "kernel_stage", "KernelStage",
    "parallel_pipeline", "PipelineError", "StageFailed", "StageDied", "PipelineDefinitionError",
    "serve_stage", "StageProgramError",
    "RankFailed", "RanksRun", "RankStats", "MPIError", "PeerDead", "MPINotBuilt",
    "fill_uniform", "apply", "sum", "set_threads", "get_threads", "has_openmp",
    "ConveyorError", "NullPointer", "InvalidArgument", "SizeOverflow", "Misaligned",
    "Overlap", "TooLarge", "Unsupported", "OutOfMemory", "Timeout", "EndOfStream", "Closed",
    "PeerDied", "BadState", "WrongRole", "NotARing", "VersionMismatch", "Truncated",
    "RingCorrupt", "Exists", "Busy", "SystemCallFailed", "NotSealed",
    "c_version",
]


def c_version():
    """The version of the C core linked into the extension, as a "major.minor.patch"
    string (conveyor_version_string()); equal to __version__ for a consistent install.
    Cost: a call into the extension. Never fails."""
    return _core.c_version()
