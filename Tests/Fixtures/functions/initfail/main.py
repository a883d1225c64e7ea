"""Cannot be loaded: raises while its module is imported."""

raise RuntimeError("cannot start")


def handle(request):
    return "unreachable"
