/* SPDX-License-Identifier: MIT */
/* epoll backend: not written yet (issue 4). */
#include <errno.h>
#include <stddef.h>

#include "loop_internal.h"

struct loop *loop_epoll_new(const struct loop_config *cfg, int *err,
			    const char **why)
{
	*err = -ENOSYS;
	*why = "the epoll backend (not built yet)";
	return NULL;
}
