"""A geo greeting: says which edge host answered and how far away the client is."""

import math
import os

GREETING = os.environ.get("GREETING", "Hello")
EARTH_RADIUS_KM = 6371.0088  # mean radius, as the platform uses for routing


def handle(request):
    host = request.host
    client = request.client
    distance = None if client is None else round(distance_km(client, host))
    if client is None:
        message = f"{GREETING} from {host['name']}! Your location is unknown."
    else:
        message = (f"{GREETING} from {host['name']}! You are {distance} km away "
                   f"(location from {client['source']}).")
    if wants_json(request):
        return {
            "message": message,
            "host": host,
            "distance_km": distance,
            "client": client,
            "invocation_id": request.invocation_id,
            "pid": os.getpid(),
        }
    return message + "\n"


def wants_json(request):
    return (request.query_params.get("format") == "json"
            or "application/json" in request.headers.get("accept", ""))


def distance_km(a, b):
    """Great-circle distance between two {latitude, longitude} points (haversine formula)."""
    lat1, lat2 = math.radians(a["latitude"]), math.radians(b["latitude"])
    dlat = lat2 - lat1
    dlon = math.radians(b["longitude"] - a["longitude"])
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))
