/* The MPI library's header, as the system module CMPI (Package.swift, trait MPI): its
 * include path and link flags come from pkg-config's ompi-c. */
#include <mpi.h>
