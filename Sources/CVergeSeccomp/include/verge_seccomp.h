#ifndef VERGE_SECCOMP_H
#define VERGE_SECCOMP_H

#include <stddef.h>

/// Builds a seccomp program for the native architecture: every system call is allowed except those named in
/// `denied` (they fail with `error`), `clone` with any namespace flag (fails with `error`) and `clone3` (fails with
/// ENOSYS, so the C library falls back to `clone`, whose flags the filter can see), and `socket`/`socketpair` of
/// any family but AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK (EAFNOSUPPORT). System calls of other
/// architectures (32-bit entry points) kill the process.
///
/// On success returns 0 and a malloc'd BPF program in `*program` (`*length` bytes; the caller frees it). Returns a
/// negative errno on failure; when a name is unknown, `*unknown` points at it.
int verge_seccomp_build(const char *const *denied, size_t count, int error, unsigned char **program, size_t *length,
                        const char **unknown);

/// pipe2(fds, O_CLOEXEC), which Swift's Glibc module does not declare.
int verge_pipe_cloexec(int fds[2]);

/// memfd_create(name, MFD_CLOEXEC): an anonymous file, for data handed to a child at a descriptor.
int verge_memfd(const char *name);

/// socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC): a parked helper's channel to the host (one message per send).
int verge_seqpacket_pair(int fds[2]);

/// Sends `length` bytes and the `count` descriptors `fds` (SCM_RIGHTS) as one message on `socket`, never raising
/// SIGPIPE. Returns 0, or a negative errno (also when only part of the message was sent).
int verge_send_with_fds(int socket, const void *bytes, size_t length, const int *fds, size_t count);

#endif
