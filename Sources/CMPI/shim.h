// Open MPI's predefined handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, MPI_IN_PLACE …) are
// macros that expand to casts of the addresses of library globals, which Swift cannot import:
// these static inline functions hand them to Swift as values.
#ifndef LOOM_CMPI_SHIM_H
#define LOOM_CMPI_SHIM_H
#include <mpi.h>

static inline MPI_Comm loom_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype loom_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype loom_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype loom_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Op loom_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Op loom_mpi_max(void) { return MPI_MAX; }
static inline MPI_Op loom_mpi_min(void) { return MPI_MIN; }
static inline void *loom_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline int loom_mpi_success(void) { return MPI_SUCCESS; }
static inline int loom_mpi_thread_funneled(void) { return MPI_THREAD_FUNNELED; }
static inline MPI_Errhandler loom_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline MPI_Request loom_mpi_request_null(void) { return MPI_REQUEST_NULL; }
static inline MPI_Status *loom_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }

// The non-blocking all-reduce of data-parallel training's overlapped gradient buckets: an
// in-place sum of `count` floats whose request `MPI_Test`/`MPI_Wait` complete.
static inline int loom_mpi_iallreduce_sum_in_place(float *buffer, int count, MPI_Comm comm, MPI_Request *request) {
    return MPI_Iallreduce(MPI_IN_PLACE, buffer, count, MPI_FLOAT, MPI_SUM, comm, request);
}
static inline int loom_mpi_test(MPI_Request *request) {
    int done = 0;
    MPI_Test(request, &done, MPI_STATUS_IGNORE);
    return done;
}
static inline void loom_mpi_wait(MPI_Request *request) { MPI_Wait(request, MPI_STATUS_IGNORE); }

#endif
