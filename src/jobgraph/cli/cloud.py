"""`jobgraph cloud up|status|env|down`: the long-lived local AWS endpoint (localcloud/daemon.py)."""

from __future__ import annotations


def cmd_cloud(args) -> int:
    """`jobgraph cloud up|status|env|down` (localcloud/daemon.py)."""
    from jobgraph.localcloud import daemon

    directory = daemon.cloud_dir(args.dir)
    if args.action == "down":
        said = daemon.down(directory)
        if not args.quiet:
            print(said)
        return 0
    if args.action == "up":
        found = daemon.running(directory)
        state = found[0] if found else daemon.up(directory, port=args.port, region=args.region)
        if args.quiet:
            return 0
        if found is None:
            print(f"local cloud up: {state.url} (pid {state.pid}); log {state.log}; `jobgraph cloud down` stops it")
        else:  # the one running is kept (its stacks and state with it), whatever --port/--region say
            print(f"the local cloud is already running: {state.url} (pid {state.pid}, region {state.region}); "
                  "`jobgraph cloud down` first to start another")  # fmt: skip
        print("point AWS tools at it (make does for ENV=local):")
        print(state.shell_exports(), end="")
        return 0
    found = daemon.running(directory)
    if found is None:
        if not args.quiet:
            print(f"the local cloud is not running (no endpoint answers for {directory}); start it: jobgraph cloud up")
        return 1
    state, answer = found
    if args.action == "env":
        print(state.shell_exports(), end="")
    elif not args.quiet:
        print("\n".join(daemon.status_lines(state, answer)))
    return 0
