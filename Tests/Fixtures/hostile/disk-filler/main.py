"""Writes as much as it can: one huge file, then many files in /tmp. Reports where it was stopped."""

import os


def fill(path, chunk, total):
    written = 0
    try:
        with open(path, "wb") as file:
            while written < total:
                file.write(chunk)
                file.flush()
                written += len(chunk)
        return {"written": written, "error": None}
    except OSError as error:
        return {"written": written, "error": os.strerror(error.errno)}


def handle(request):
    chunk = b"x" * (256 * 1024)
    big = fill("/tmp/big", chunk, 1024 * 1024 * 1024)
    many = []
    for index in range(8):
        many.append(fill(f"/tmp/part{index}", chunk, 3 * 1024 * 1024))
    return {"big_file": big, "many_files": many}
