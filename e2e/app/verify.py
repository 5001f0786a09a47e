import hashlib
import hmac
import time
from collections import OrderedDict


def verify_webhook(headers, raw_body: bytes, keys: list[str], seen: OrderedDict,
                   tolerance_seconds: int = 300, now: float | None = None) -> str | None:
    """Verify one socketio-hub webhook call.

    `headers`: a mapping with lower-case names (or a case-insensitive one, like Flask's or
    http.server's); `raw_body`: the body's bytes exactly as received; `keys`: the access keys
    you hold; `seen`: one OrderedDict shared by every call (the ids already accepted).
    Returns None for a genuine, fresh, first-seen call, else the reason to refuse it (401).
    """
    now_seconds = int(time.time() if now is None else now)
    ts = headers.get("ce-timestamp") or ""
    if not (ts.isascii() and ts.isdigit() and len(ts) <= 12):
        return "missing or malformed ce-timestamp"
    if abs(now_seconds - int(ts)) > tolerance_seconds:
        return "stale ce-timestamp"
    cid, ctype, source = (headers.get(h) for h in ("ce-id", "ce-type", "ce-source"))
    if not (cid and ctype and source):
        return "missing ce-id, ce-type or ce-source"
    signed = f"{ts}\n{cid}\n{ctype}\n{source}\n".encode() + raw_body
    wanted = [hmac.new(k.encode(), signed, hashlib.sha256).hexdigest() for k in keys]
    parts = [p.strip() for p in (headers.get("ce-signature") or "").split(",")]
    if not any(p.isascii() and p.startswith("v1=") and hmac.compare_digest(p[3:], w)
               for p in parts for w in wanted):
        return "bad signature"
    # Forget ids whose timestamp has left the window (a replay of them is stale anyway).
    while seen and next(iter(seen.values())) < now_seconds:
        seen.popitem(last=False)
    key = f"{source} {cid}"
    if key in seen:
        return "replayed"
    seen[key] = max(int(ts), now_seconds) + tolerance_seconds
    return None
