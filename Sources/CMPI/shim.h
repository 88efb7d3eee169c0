// OpenMPI's handle macros (MPI_COMM_WORLD, MPI_FLOAT, ...) do not import into Swift:
// these accessors return them, non-null so Swift sees plain values.
#pragma once
#include <mpi.h>

static inline MPI_Comm _Nonnull hd_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype _Nonnull hd_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Datatype _Nonnull hd_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype _Nonnull hd_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype _Nonnull hd_mpi_int64(void) { return MPI_INT64_T; }
static inline MPI_Op _Nonnull hd_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Op _Nonnull hd_mpi_max(void) { return MPI_MAX; }
static inline void * _Nonnull hd_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Status * _Nullable hd_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline MPI_Errhandler _Nonnull hd_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline MPI_Datatype _Nonnull hd_mpi_int(void) { return MPI_INT; }
