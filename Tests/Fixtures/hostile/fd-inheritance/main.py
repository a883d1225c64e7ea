"""Reports the descriptors the worker inherited, as recorded by inherited.so before the runtime started (a worker
has fds 0-2 and the channel at 3, nothing else). Any other descriptor is the host's: a listening socket of the
control plane, the gateway or a host lets the function accept their connections and read the credentials they
carry."""


def handle(request):
    try:
        with open("/tmp/inherited") as report:
            return {"inherited": report.read().splitlines()}
    except OSError as error:
        return {"error": "inherited.so did not run: " + error.strerror}
