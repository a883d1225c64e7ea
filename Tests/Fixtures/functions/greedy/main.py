def handle(request):
    return "should never run: the host allows fewer processes"
