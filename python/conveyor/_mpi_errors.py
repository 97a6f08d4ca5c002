"""conveyor.MPIError and conveyor.PeerDead: the failures of the MPI bridge (conveyor._mpi
and Pipeline.run_across_ranks). Plain Python, so that they exist, and can be caught, in a
package built without MPI too."""

from ._core import ConveyorError, PeerDied

__all__ = ["MPIError", "PeerDead", "MPINotBuilt"]


class MPIError(ConveyorError):
    """A link or the MPI job failed. ``status`` is the C status (e.g. 6 for
    CONVEYOR_E_UNSUPPORTED, 100 for CONVEYOR_MPI_E_MPI; 0 when the failure is not a
    status of the library), ``name`` its symbolic name or None; the message holds the
    link's own words (the peer, the channel, the call, MPI's message)."""

    def __init__(self, message, status=0, name=None):
        super().__init__(message)
        self.status = status
        self.name = name


class PeerDead(MPIError, PeerDied):
    """The rank at the other end of a link died, went silent for longer than its
    liveness bound, or left without closing (CONVEYOR_E_PEER_DEAD). Also a
    conveyor.PeerDied. After it, end the job with conveyor._mpi.abort rather than
    finalize (which waits for the dead rank)."""


class MPINotBuilt(MPIError):
    """This conveyor was built without MPI (no MPI library was found when it was
    installed), so conveyor._mpi and Pipeline.run_across_ranks are not available."""
