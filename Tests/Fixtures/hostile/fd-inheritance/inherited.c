// Built by the test into inherited.so and preloaded into the worker (see verge.json), so it runs before the Python
// runtime closes stray descriptors, as a Swift function's own code would: writes one line per descriptor above 3 the
// worker inherited to /tmp/inherited (the sandbox's private /tmp). Descriptors are only looked at.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>

__attribute__((constructor)) static void report_inherited(void) {
    FILE *out = fopen("/tmp/inherited", "w");
    if (out == NULL) return;
    int own = fileno(out);
    for (int fd = 4; fd < 4096; fd++) {
        struct stat status;
        if (fd == own || fstat(fd, &status) != 0) continue;
        int listening = 0;
        socklen_t length = sizeof listening;
        struct sockaddr_in address = {0};
        socklen_t addressLength = sizeof address;
        if (S_ISSOCK(status.st_mode) && getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) == 0
            && getsockname(fd, (struct sockaddr *)&address, &addressLength) == 0 && address.sin_family == AF_INET) {
            char host[INET_ADDRSTRLEN] = "";
            inet_ntop(AF_INET, &address.sin_addr, host, sizeof host);
            fprintf(out, "fd %d: %s socket %s:%d\n", fd, listening ? "listening" : "connected", host,
                    ntohs(address.sin_port));
        } else {
            fprintf(out, "fd %d: type %o\n", fd, (unsigned)(status.st_mode & S_IFMT));
        }
    }
    fclose(out);
}
