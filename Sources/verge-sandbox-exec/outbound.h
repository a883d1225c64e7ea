// Outbound network for a worker: slirp4netns attached to the sandbox's network namespace. See outbound.c.
#ifndef VERGE_SANDBOX_EXEC_OUTBOUND_H
#define VERGE_SANDBOX_EXEC_OUTBOUND_H

// Exits with status 125 after one line on stderr.
void fail(const char *format, ...) __attribute__((noreturn, format(printf, 1, 2)));
unsigned long long number(const char *text, const char *what);

// As root, in the helper's mount namespace (made private first unless `already_private`): a world-usable
// /dev/net/tun for the tenant's slirp4netns, on a tmpfs over /dev/net that only this namespace sees.
void outbound_prepare_tun(int already_private);

// As the tenant, just before executing bubblewrap: starts the attacher (see outbound.c) and puts the ends of its
// pipes bubblewrap uses at `info_fd` (bubblewrap's --info-fd) and `block_fd` (its --block-fd).
void outbound_start(const char *slirp4netns, int info_fd, int block_fd);

#endif
