"""Entry of the stand-in runtime: Lambda's module search path, then awslambdaric's invocation loop.

`python3.13 -m awslambdaric HANDLER` alone would import the handler with the interpreter's default path:
no /var/task first, no layers. Lambda's Python runtimes search, in this order, the function code
(LAMBDA_TASK_ROOT), the layers (/opt/python/lib/pythonX.Y/site-packages, /opt/python), then the
runtime's own packages (boto3, awslambdaric) and the standard library; so do we, so that a layer's
copy of a package shadows the runtime's exactly as on AWS.
"""

import os
import sys


def main() -> None:
    handler = (sys.argv[1] if len(sys.argv) > 1 else "") or os.environ.get("_HANDLER", "")
    handler = handler or os.environ.get("AWS_LAMBDA_FUNCTION_HANDLER", "")
    if not handler:
        sys.exit("bootstrap: no handler (_HANDLER is unset)")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    first = [
        os.environ.get("LAMBDA_TASK_ROOT", "/var/task"),
        f"/opt/python/lib/python{version}/site-packages",
        "/opt/python",
    ]
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = first + [p for p in sys.path if p not in first and p != here]

    from awslambdaric.__main__ import main as run_runtime

    run_runtime([sys.argv[0], handler])


if __name__ == "__main__":
    main()
