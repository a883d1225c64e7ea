"""Writes a small MaxMind DB (.mmdb) for tests, in the GeoLite2-City layout, with the `mmdb-writer` package.

Usage: make-test-mmdb.py SPEC.json OUT.mmdb

SPEC.json: {"database_type": "Verge-Test-City", "networks": [
    {"network": "203.0.113.0/24", "country": "SG", "city": "Singapore", "latitude": 1.29, "longitude": 103.85},
    {"network": "2001:db8:5::/48", "country": "JP"}          # no coordinates: a country-only entry
]}
The file is written next to OUT and renamed over it, so a reader never sees half a database.
"""
import json
import os
import sys

from mmdb_writer import MMDBWriter
from netaddr import IPSet


def main() -> None:
    spec_path, out_path = sys.argv[1], sys.argv[2]
    with open(spec_path) as spec_file:
        spec = json.load(spec_file)
    writer = MMDBWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type=spec.get("database_type", "Verge-Test-City"),
        languages=["en"],
        description="Verge test database",
    )
    for entry in spec["networks"]:
        record = {}
        if "country" in entry:
            record["country"] = {"iso_code": entry["country"]}
        if "city" in entry:
            record["city"] = {"names": {"en": entry["city"]}}
        if "latitude" in entry:
            record["location"] = {"latitude": float(entry["latitude"]), "longitude": float(entry["longitude"])}
        writer.insert_network(IPSet([entry["network"]]), record)
    temporary = out_path + ".tmp"
    writer.to_db_file(temporary)
    os.replace(temporary, out_path)


if __name__ == "__main__":
    main()
