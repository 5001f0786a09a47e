#!/usr/bin/env python3
"""Cluster DNS records for scripts/k8s-node-test, from the live Services and Endpoints.

CoreDNS is what answers `*.svc.cluster.local` on a real cluster; it is not packaged in Debian and
no image can be pulled here, so the node test runs Debian's dnsmasq and this feeder instead. It
reads what CoreDNS's `kubernetes` plugin reads (Services and Endpoints, through the API server,
every second) and writes a hosts file with the same answers:

  <svc>.<ns>.svc.cluster.local            -> the ClusterIP, or for a headless Service every
                                             address of its Endpoints (ready ones, plus not-ready
                                             ones when the Service publishes them: the endpoints
                                             controller already puts those under `addresses`)
  <hostname>.<svc>.<ns>.svc.cluster.local -> that address (StatefulSet pods)

On a change it rewrites the file atomically and sends SIGHUP to dnsmasq, which rereads it.
Nothing here invents an address: a name resolves only once the endpoints controller has listed it.

Usage: cluster-dns.py API_URL CA_FILE TOKEN_FILE HOSTS_FILE DNSMASQ_PID_FILE
"""
import json
import os
import signal
import ssl
import sys
import time
import urllib.request

DOMAIN = "cluster.local"


def get(api, ctx, token, path):
    req = urllib.request.Request(api + path, headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, context=ctx, timeout=5) as res:
        return json.load(res)


def records(services, endpoints):
    eps = {(e["metadata"]["namespace"], e["metadata"]["name"]): e for e in endpoints["items"]}
    rows = []
    for svc in services["items"]:
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        fqdn = f"{name}.{ns}.svc.{DOMAIN}"
        cluster_ip = svc["spec"].get("clusterIP")
        if cluster_ip and cluster_ip != "None":
            rows.append((cluster_ip, fqdn))
            continue
        for subset in eps.get((ns, name), {}).get("subsets") or []:
            for addr in subset.get("addresses") or []:
                rows.append((addr["ip"], fqdn))
                if addr.get("hostname"):
                    rows.append((addr["ip"], f"{addr['hostname']}.{fqdn}"))
    return "".join(f"{ip} {host}\n" for ip, host in sorted(set(rows)))


def main():
    api, ca, token_file, hosts, pid_file = sys.argv[1:6]
    ctx = ssl.create_default_context(cafile=ca)
    token = open(token_file).read().strip()
    current = None
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    while not stop:
        try:
            text = records(get(api, ctx, token, "/api/v1/services"), get(api, ctx, token, "/api/v1/endpoints"))
        except Exception as e:  # the API server restarting: keep the last records, try again
            print(f"cluster-dns: {e}", file=sys.stderr, flush=True)
            time.sleep(1)
            continue
        if text != current:
            with open(hosts + ".tmp", "w") as f:
                f.write(text)
            os.replace(hosts + ".tmp", hosts)
            current = text
            try:
                os.kill(int(open(pid_file).read().strip()), signal.SIGHUP)
            except (OSError, ValueError) as e:
                print(f"cluster-dns: cannot signal dnsmasq: {e}", file=sys.stderr, flush=True)
            print(f"cluster-dns: {text.count(chr(10))} records", file=sys.stderr, flush=True)
        time.sleep(1)


if __name__ == "__main__":
    main()
