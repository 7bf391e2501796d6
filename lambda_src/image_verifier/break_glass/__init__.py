"""Break-glass signing: two people approve, then a Lambda signs one image with the break-glass key.

Three entry points over the same runtime package (see constructs_lib/break_glass_signing.py):

- ``approval``: the two-person rule as a pure module (requests, approvals, rejections, expiry);
- ``url_handler``: the function URL (``AWS_IAM`` auth) that requests, approves and rejects, with
  the caller's identity taken from AWS authentication, and completes the Step Functions task token;
- ``signer``: signs the approved digest in cosign format with the break-glass KMS key.
"""

from __future__ import annotations
