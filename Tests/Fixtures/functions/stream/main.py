"""Streams ?chunks=N lines (default 5), one every 10 ms."""

import time

from verge import Response


def handle(request):
    count = int(request.query_params.get("chunks", "5"))

    def chunks():
        for index in range(count):
            time.sleep(0.01)
            yield f"chunk {index}\n"

    return Response(chunks(), headers={"content-type": "text/plain; charset=utf-8"})
