import CMPI
import Foundation

/// The process group this process trains in, chosen from how it was started: under Open MPI's
/// `mpirun` (which sets `OMPI_COMM_WORLD_SIZE` and `OMPI_COMM_WORLD_RANK` for every rank it
/// starts) MPI is initialised and the group is `MPI_COMM_WORLD`; otherwise the group is this
/// process alone and MPI is never initialised, so a plain `loom pretrain` neither needs nor
/// touches an MPI runtime.
public enum World {
    private nonisolated(unsafe) static var current: Communicator?
    private nonisolated(unsafe) static var mpi: MPICommunicator?

    /// Whether Open MPI's launcher started this process.
    public static var launchedByMPI: Bool {
        ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"] != nil
    }

    /// The group; the first use initialises MPI when `launchedByMPI`.
    public static var communicator: Communicator {
        if let current { return current }
        let group: Communicator
        if launchedByMPI {
            var provided: Int32 = 0
            MPI_Init_thread(nil, nil, loom_mpi_thread_funneled(), &provided)
            let communicator = MPICommunicator()
            mpi = communicator
            group = communicator
        } else {
            group = SingleProcessCommunicator()
        }
        current = group
        return group
    }

    /// Whether more than one process trains together (MPI initialised with size > 1).
    public static var isDistributed: Bool { (current?.size ?? 1) > 1 }

    /// Rank 0, or a process outside any group: the one that prints progress and writes files.
    public static var isPrimary: Bool { (current?.rank ?? 0) == 0 }

    /// `MPI_Finalize` when MPI was initialised (the end of a successful run).
    public static func finalize() {
        guard mpi != nil else { return }
        MPI_Finalize()
        mpi = nil
    }

    /// After an error: under MPI, ends every rank of the job (`MPI_Abort`) so that none waits
    /// for this one in a collective; otherwise returns and the caller exits as usual.
    public static func abortJobIfDistributed(exitCode: Int32) {
        guard let mpi, mpi.size > 1 else { return }
        mpi.abort(exitCode: exitCode)
    }
}
