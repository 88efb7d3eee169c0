// OpenBLAS's CBLAS and LAPACKE (a separate Debian library on top of OpenBLAS's LAPACK).
#pragma once
#include <cblas.h>
#include <lapacke.h>
