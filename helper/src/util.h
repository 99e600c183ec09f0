/* Small helpers shared by mymachines-enter's parts. */
#pragma once

/* The errno's symbolic name (ENOSPC), for the daemon to map to machined's errors. */
const char *errno_name(int err);

/* mkdir -p of every parent of path (not path itself), mode 0755; path must be absolute (else EINVAL). */
int mkdir_parents(const char *path);
