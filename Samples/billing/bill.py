#!/usr/bin/env python3
"""A billing job for Verge: bills every usage record exactly once, one invoice per tenant.

It keeps its position in the control plane's usage export (`GET /v1/usage?after=CURSOR`) in a state directory.
Each run pages from the saved cursor to the end of the export, prices what it read with a price sheet, writes the
run's invoices to `STATE/runs/run-<from>-<to>.json` (atomically), then moves the cursor to `<to>`. A run that dies
before moving the cursor is completed by the next run from its invoice file instead of billing the records again,
so every record is billed once however the job is interrupted.

Standard library only. Usage:
    bill.py --api URL [--token TOKEN | env VERGE_TOKEN] --prices prices.json --state DIR [--json]
"""

import argparse
import decimal
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from decimal import Decimal

PAGE = 1000
MIB_MS_PER_GB_SECOND = Decimal(1024 * 1000)  # memory_mb × billed_ms → GB-seconds (1 GB = 1024 MiB)
BYTES_PER_GB = Decimal(10**9)  # egress is billed per decimal GB, as clouds do
PRICE_KEYS = ["per_million_requests", "per_gb_second", "per_cpu_ms", "per_gb_egress", "per_init_ms"]


def fail(message):
    print("error: " + message, file=sys.stderr)
    sys.exit(1)


def load_prices(path):
    try:
        with open(path) as f:
            sheet = json.load(f)
    except (OSError, ValueError) as error:
        fail(f"cannot read the price sheet {path}: {error}")
    unknown = set(sheet) - set(PRICE_KEYS) - {"currency", "free_statuses"}
    if unknown:
        fail(f"price sheet {path}: unknown keys {sorted(unknown)}")
    prices = {}
    for key in PRICE_KEYS:
        if key not in sheet:
            fail(f"price sheet {path}: '{key}' is missing")
        try:
            prices[key] = Decimal(str(sheet[key]))
        except decimal.InvalidOperation:
            fail(f"price sheet {path}: '{key}' is not a number")
        if prices[key] < 0:
            fail(f"price sheet {path}: '{key}' is negative")
    prices["currency"] = str(sheet.get("currency", "USD"))
    prices["free_statuses"] = set(sheet.get("free_statuses", ["rejected"]))
    return prices


def fetch_page(api, token, after):
    query = urllib.parse.urlencode({"after": after, "limit": PAGE})
    request = urllib.request.Request(f"{api}/v1/usage?{query}", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        body = error.read().decode("utf-8", "replace")
        fail(f"the control plane answered {error.code}: {body}")
    except (urllib.error.URLError, OSError) as error:
        fail(f"cannot reach the control plane at {api}: {error}")


def new_usage():
    return {"requests": 0, "free_requests": 0, "memory_mb_ms": 0, "cpu_us": 0, "init_us": 0, "egress_bytes": 0}


def add(usage, record, prices):
    if record["status"] in prices["free_statuses"]:
        usage["free_requests"] += 1
        return
    usage["requests"] += 1
    usage["memory_mb_ms"] += int(record.get("memory_mb", 0)) * int(record.get("billed_ms", 0))
    usage["cpu_us"] += int(record.get("cpu_us", 0))
    usage["init_us"] += int(record.get("init_us", 0))
    usage["egress_bytes"] += int(record.get("response_bytes", 0))


def invoice(tenant, usage, prices):
    cent = Decimal("0.000001")
    gb_seconds = Decimal(usage["memory_mb_ms"]) / MIB_MS_PER_GB_SECOND
    cpu_ms = Decimal(usage["cpu_us"]) / 1000
    init_ms = Decimal(usage["init_us"]) / 1000
    egress_gb = Decimal(usage["egress_bytes"]) / BYTES_PER_GB
    lines = [
        ("requests", Decimal(usage["requests"]), Decimal(usage["requests"]) / 10**6 * prices["per_million_requests"]),
        ("gb_seconds", gb_seconds, gb_seconds * prices["per_gb_second"]),
        ("cpu_ms", cpu_ms, cpu_ms * prices["per_cpu_ms"]),
        ("init_ms", init_ms, init_ms * prices["per_init_ms"]),
        ("egress_gb", egress_gb, egress_gb * prices["per_gb_egress"]),
    ]
    return {
        "tenant": tenant,
        "currency": prices["currency"],
        "requests": usage["requests"],
        "free_requests": usage["free_requests"],
        "lines": [{"item": item, "quantity": str(q), "amount": str(a.quantize(cent))} for item, q, a in lines],
        "total": str(sum((a for _, _, a in lines), Decimal(0)).quantize(cent)),
    }


def write_atomically(path, text):
    temporary = path + ".tmp"
    with open(temporary, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)
    directory = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def read_cursor(state):
    path = os.path.join(state, "cursor")
    if not os.path.exists(path):
        return 0
    text = open(path).read().strip()
    if not text.isdigit():
        fail(f"{path} does not hold a cursor: {text[:40]!r}")
    return int(text)


def finished_run(state, cursor):
    """The invoice file of a run that started at `cursor` but died before saving its end cursor, if any."""
    prefix = f"run-{cursor}-"
    runs = os.path.join(state, "runs")
    for name in sorted(os.listdir(runs)):
        if name.startswith(prefix) and name.endswith(".json"):
            return os.path.join(runs, name), int(name[len(prefix):-len(".json")])
    return None


def print_invoices(invoices, as_json):
    if as_json:
        print(json.dumps(invoices, indent=2, sort_keys=True))
        return
    if not invoices["invoices"]:
        print(f"nothing to bill after cursor {invoices['from_cursor']}")
    for inv in invoices["invoices"]:
        print(f"Invoice for tenant {inv['tenant']} (cursor {invoices['from_cursor']}..{invoices['to_cursor']})")
        for line in inv["lines"]:
            print(f"  {line['item']:<12} {line['quantity']:>24}  {line['amount']:>14} {inv['currency']}")
        print(f"  {'total':<12} {'':>24}  {inv['total']:>14} {inv['currency']}")
        print(f"  ({inv['requests']} billed calls, {inv['free_requests']} free)")


def main():
    parser = argparse.ArgumentParser(description="Bill Verge usage records exactly once.")
    parser.add_argument("--api", required=True, help="the control plane's URL")
    parser.add_argument("--token", default=os.environ.get("VERGE_TOKEN"), help="a usage:read or admin token")
    parser.add_argument("--prices", required=True, help="the price sheet (JSON)")
    parser.add_argument("--state", required=True, help="directory for the cursor and the runs' invoices")
    parser.add_argument("--json", action="store_true", help="print the run's invoices as JSON")
    args = parser.parse_args()
    if not args.token:
        fail("no token: pass --token or set VERGE_TOKEN (a token with the usage:read scope)")
    prices = load_prices(args.prices)
    os.makedirs(os.path.join(args.state, "runs"), exist_ok=True)
    api = args.api.rstrip("/")

    cursor = read_cursor(args.state)
    pending = finished_run(args.state, cursor)
    if pending:
        # The last run wrote its invoices but not its cursor: those records are billed; finish that run.
        path, end = pending
        write_atomically(os.path.join(args.state, "cursor"), f"{end}\n")
        print(f"completed an interrupted run: {os.path.basename(path)}", file=sys.stderr)
        cursor = end

    usage = {}
    seen = set()
    end = cursor
    while True:
        page = fetch_page(api, args.token, end)
        records = page.get("records", [])
        next_cursor = int(page.get("next_cursor", end))
        if not records or next_cursor <= end:
            break
        for record in records:
            key = (record["host"], record["invocation_id"])
            if key in seen:
                fail(f"the export repeated invocation {key}: refusing to bill it twice")
            seen.add(key)
            add(usage.setdefault(record["tenant"], new_usage()), record, prices)
        end = next_cursor

    invoices = {
        "from_cursor": cursor,
        "to_cursor": end,
        "invoices": [invoice(tenant, usage[tenant], prices) for tenant in sorted(usage)],
    }
    if end > cursor:
        write_atomically(
            os.path.join(args.state, "runs", f"run-{cursor}-{end}.json"), json.dumps(invoices, indent=2) + "\n")
        write_atomically(os.path.join(args.state, "cursor"), f"{end}\n")
    print_invoices(invoices, args.json)


if __name__ == "__main__":
    main()
