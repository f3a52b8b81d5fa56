// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * gosync demo: shows the kernel module answering the library.
 * Run by 'make demo' inside the test VM.
 */
#include <stdio.h>

#include "gosync.h"

int main(void)
{
	int err = gs_init();
	int64_t features;

	if (err) {
		fprintf(stderr, "%s\n", gs_init_error());
		return 1;
	}
	features = gs_features();
	printf("gosync: /dev/gosync speaks ABI %d, features %#llx\n",
	       GOSYNC_ABI_VERSION, (unsigned long long)features);
	return 0;
}
