#ifndef CHIREDIS_SHIM_H
#define CHIREDIS_SHIM_H

/* hiredis (Debian: libhiredis-dev). No shims: the State backend calls only
   non-variadic functions (redisCommandArgv, redisAppendCommandArgv). */
#include <hiredis/hiredis.h>

#endif
