"""Run the documented Python verifier (verify.py, the code in docs/webhooks.md) over calls given
as JSON lines on stdin: {"headers": {...}, "body": "<base64>", "keys": [...], "now": <s>?}; prints one JSON
line per call: {"verdict": null | "<reason>"}. One `seen` table is shared by all lines, as in
an application. Used by e2e/node/webhooks.test.js."""
import base64
import json
import sys
from collections import OrderedDict

from verify import verify_webhook

seen: OrderedDict = OrderedDict()
for line in sys.stdin:
    call = json.loads(line)
    verdict = verify_webhook(call["headers"], base64.b64decode(call["body"]), call["keys"], seen,
                             now=call.get("now"))
    print(json.dumps({"verdict": verdict}), flush=True)
