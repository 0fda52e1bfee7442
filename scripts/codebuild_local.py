"""`make codebuild-local`: buildspec.yml run as AWS CodeBuild runs it, against the local cloud (ENV=local).

    python scripts/codebuild_local.py                       # ENV=local, the local cloud started if none runs
    python scripts/codebuild_local.py --env PYTEST_ARGS=tests/unit --env TEST_RUN_ID=ci

What CodeBuild does, done here (buildspec version 0.2):
- the phases run in order — install, pre_build, build, post_build — each command in one `bash` session per
  build (exported variables and the working directory carry over from command to command, as in 0.2);
- the first failing command ends its phase (its ``finally`` commands still run). A failure in install or
  pre_build ends the build; a failure in build still runs post_build, with CODEBUILD_BUILD_SUCCEEDING=0;
  ``on-failure: CONTINUE`` carries on to the next phase instead. Artifacts are then gathered, even after a
  failing build, as CodeBuild always attempts UPLOAD_ARTIFACTS;
- ``env.variables``, then the overrides (``--env``, like StartBuild's environmentVariablesOverride), then the
  CODEBUILD_* variables (build id, number, ARN, source directory and version, start time, succeeding, initiator);
- ``artifacts`` (files with ``**`` globs, base-directory, discard-paths, exclude-paths, name) are zipped into
  ``.codebuild/<build id>/artifacts.zip`` and, when the local cloud is up, uploaded to its artifacts bucket;
  ``reports`` files are copied to ``.codebuild/<build id>/reports/<group>/`` and JUnit totals printed;
- runtime-versions: the python version is checked against the interpreters the Makefile can use.
What differs: the source is this working tree as it is (CodeBuild checks out a fresh copy); ``cache`` is not
used; ``parameter-store``/``secrets-manager`` are refused (this build needs none); the build runs as you.
The Docker and browser tests the buildspec opts into run only where a Docker daemon / Chromium exists: without
one, JOBGRAPH_DOCKER_TESTS / JOBGRAPH_BROWSER_TESTS are overridden to 0 and the output says so.
Exit status 0 when every phase succeeded, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from pathlib import Path
from xml.etree import ElementTree

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("install", "pre_build", "build", "post_build")
ENDS_THE_BUILD = ("install", "pre_build")  # a failure here skips the remaining phases


class BuildspecError(ValueError):
    """The buildspec cannot be run (unsupported version or section)."""


def say(message: str) -> None:
    print(f"[codebuild-local] {message}", flush=True)


def load_buildspec(path: Path) -> dict:
    import yaml

    spec = yaml.safe_load(path.read_text())
    if not isinstance(spec, dict) or str(spec.get("version")) != "0.2":
        raise BuildspecError(f"{path}: only buildspec version 0.2 is supported")
    env = spec.get("env") or {}
    for unsupported in ("parameter-store", "secrets-manager"):
        if env.get(unsupported):
            raise BuildspecError(f"{path}: env.{unsupported} is not supported locally")
    unknown = set(spec.get("phases") or {}) - set(PHASES)
    if unknown:
        raise BuildspecError(f"{path}: unknown phase(s) {sorted(unknown)}")
    return spec


def codebuild_variables(build_id: str, number: int, started_ms: int, region: str, source: Path) -> dict[str, str]:
    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=source, capture_output=True, text=True)
        return result.stdout.strip() if result.returncode == 0 else ""

    project = build_id.split(":", 1)[0]
    return {
        "CODEBUILD_BUILD_ID": build_id,
        "CODEBUILD_BUILD_ARN": f"arn:aws:codebuild:{region}:123456789012:build/{build_id}",
        "CODEBUILD_BUILD_NUMBER": str(number),
        "CODEBUILD_BUILD_IMAGE": "codebuild-local (this machine)",
        "CODEBUILD_BUILD_SUCCEEDING": "1",
        "CODEBUILD_INITIATOR": "codebuild-local",
        "CODEBUILD_LOG_PATH": build_id.split(":", 1)[1],
        "CODEBUILD_PROJECT_NAME": project,
        "CODEBUILD_RESOLVED_SOURCE_VERSION": git("rev-parse", "HEAD"),
        "CODEBUILD_SOURCE_REPO_URL": git("remote", "get-url", "origin") or str(source),
        "CODEBUILD_SOURCE_VERSION": git("rev-parse", "--abbrev-ref", "HEAD"),
        "CODEBUILD_SRC_DIR": str(source),
        "CODEBUILD_START_TIME": str(started_ms),
        "CODEBUILD_CI": "true",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
    }


class Shell:
    """One shell session for the whole build: exported variables and the directory carry over (buildspec 0.2)."""

    def __init__(self, shell: str, env: dict[str, str], cwd: Path, state_dir: Path):
        self.shell, self.env, self.cwd, self.state_dir = shell, dict(env), cwd, state_dir

    def run(self, command: str) -> int:
        script, saved_env, saved_pwd = (self.state_dir / name for name in ("command.sh", "env", "pwd"))
        script.write_text(command + "\n")
        wrapper = f'. "{script}"\n__status=$?\nexport -p > "{saved_env}"; pwd > "{saved_pwd}"\nexit $__status\n'
        result = subprocess.run([self.shell, "-c", wrapper], cwd=self.cwd, env=self.env)
        self._restore(saved_env, saved_pwd)
        return result.returncode

    def _restore(self, saved_env: Path, saved_pwd: Path) -> None:
        """The variables the command exported and the directory it ended in, for the next command."""
        if not saved_env.is_file() or not saved_pwd.is_file():
            return  # the command exited the shell itself: nothing carried over
        self.cwd = Path(saved_pwd.read_text().strip() or self.cwd)
        probe = subprocess.run([self.shell, "-c", f'. "{saved_env}"; env -0'], capture_output=True, env={})
        if probe.returncode == 0:
            pairs = [item.split("=", 1) for item in probe.stdout.decode(errors="replace").split("\0") if "=" in item]
            self.env = {key: value for key, value in pairs if key not in ("PWD", "OLDPWD", "SHLVL", "_")}
        saved_env.unlink()
        saved_pwd.unlink()


def run_phase(name: str, phase: dict, shell: Shell) -> bool:
    """The phase's commands until one fails, then its ``finally`` commands; True if it succeeded."""
    succeeded = True
    for command in phase.get("commands") or []:
        say(f"{name.upper()}: {_short(command)}")
        code = shell.run(str(command))
        if code != 0:
            say(f"{name.upper()}: command failed with exit status {code}")
            succeeded = False
            break
    for command in phase.get("finally") or []:
        say(f"{name.upper()} (finally): {_short(command)}")
        if shell.run(str(command)) != 0:
            succeeded = False
    return succeeded


def _short(command: str) -> str:
    text = " ".join(str(command).split())
    return text if len(text) <= 160 else text[:157] + "..."


def runtime_path(spec: dict) -> str | None:
    """runtime-versions: the folder of an interpreter of the python version asked for, to put first on PATH
    (CodeBuild's image switches its runtime so); None when the buildspec asks for none."""
    versions = ((spec.get("phases") or {}).get("install") or {}).get("runtime-versions") or {}
    wanted = versions.get("python")
    if wanted is None:
        return None
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [*sorted(map(str, pyenv.glob(f"versions/{wanted}.*/bin/python{wanted}")), reverse=True)]
    candidates += [c for c in (shutil.which(f"python{wanted}"),) if c]
    for candidate in candidates:  # a pyenv shim without that version selected exits 127: run each to be sure
        probe = subprocess.run([candidate, "--version"], capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.split()[-1].startswith(f"{wanted}."):
            say(f"runtime-versions: python {wanted} -> {candidate}")
            return str(Path(candidate).parent)
    raise BuildspecError(f"runtime-versions python {wanted}: no working python{wanted} on PATH or under pyenv")


def _pattern(glob: str) -> re.Pattern:
    """A buildspec file glob: ``**`` spans directories (none too), ``*`` and ``?`` stay within one."""
    out, index = [], 0
    while index < len(glob):
        if glob.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
        elif glob.startswith("**", index):
            out.append(".*")
            index += 2
        elif glob[index] == "*":
            out.append("[^/]*")
            index += 1
        elif glob[index] == "?":
            out.append("[^/]")
            index += 1
        else:
            out.append(re.escape(glob[index]))
            index += 1
    return re.compile("".join(out) + r"\Z")


def _matches(relative: str, patterns: list[str]) -> bool:
    return any(_pattern(p.removeprefix("./")).match(relative) for p in patterns)


def collect(section: dict, base: Path) -> list[tuple[Path, str]]:
    """(file, path in the artifact) of an artifacts/reports section's ``files`` under its base-directory."""
    root = base / section.get("base-directory", ".")
    patterns = [str(p) for p in section.get("files") or []]
    excluded = [str(p) for p in section.get("exclude-paths") or []]
    discard = str(section.get("discard-paths", "no")).lower() in ("yes", "true")
    found = []
    if not root.is_dir():
        return found
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        relative = path.relative_to(root).as_posix()
        if _matches(relative, patterns) and not _matches(relative, excluded):
            found.append((path, path.name if discard else relative))
    return found


def upload_artifacts(spec: dict, source: Path, build_dir: Path, build_id: str, env: dict[str, str]) -> Path | None:
    section = spec.get("artifacts")
    if not section:
        return None
    files = collect(section, source)
    archive = build_dir / "artifacts.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path, name in files:
            zipped.write(path, name)
    say(f"UPLOAD_ARTIFACTS: {len(files)} file(s) -> {archive}")
    for _path, name in files:
        say(f"  {name}")
    if env.get("AWS_ENDPOINT_URL"):  # the local cloud: the artifact goes where CodeBuild would put it, into S3
        import boto3

        from jobgraph.localcloud.daemon import ARTIFACTS_BUCKET

        s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env.get("AWS_REGION", "eu-west-1"),
                          aws_access_key_id=env.get("AWS_ACCESS_KEY_ID"), aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
                          aws_session_token=env.get("AWS_SESSION_TOKEN"))  # fmt: skip
        name = section.get("name") or "artifacts.zip"
        key = f"codebuild/{build_id.split(':', 1)[1]}/{name}"
        s3.upload_file(str(archive), ARTIFACTS_BUCKET, key)
        say(f"UPLOAD_ARTIFACTS: s3://{ARTIFACTS_BUCKET}/{key} on the local cloud")
    return archive


def gather_reports(spec: dict, source: Path, build_dir: Path) -> dict[str, dict]:
    totals = {}
    for group, section in (spec.get("reports") or {}).items():
        target = build_dir / "reports" / group
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for path, name in collect(section, source):
            destination = target / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination)
            if str(section.get("file-format", "JUNITXML")).upper() == "JUNITXML":
                try:
                    root = ElementTree.parse(path).getroot()
                except ElementTree.ParseError:
                    continue
                suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
                for suite in suites:
                    for key in counts:
                        counts[key] += int(suite.get(key, 0))
        totals[group] = counts
        say(f"REPORTS: {group}: {counts['tests']} tests, {counts['failures']} failures, {counts['errors']} errors, "
            f"{counts['skipped']} skipped -> {target}")  # fmt: skip
    return totals


def _docker_answers() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        return subprocess.run([docker, "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def machine_overrides(env: dict[str, str]) -> dict[str, str]:
    """What this machine cannot do that the CodeBuild image can: said, and turned off."""
    overrides = {}
    if env.get("JOBGRAPH_DOCKER_TESTS") == "1" and not _docker_answers():
        overrides["JOBGRAPH_DOCKER_TESTS"] = "0"
        say("no Docker daemon answers here: JOBGRAPH_DOCKER_TESTS=0 (the Docker tests are skipped, with their reason)")
    if env.get("JOBGRAPH_BROWSER_TESTS") == "1" and not (shutil.which("chromium") or shutil.which("google-chrome")):
        overrides["JOBGRAPH_BROWSER_TESTS"] = "0"
        say("no Chromium/Chrome here: JOBGRAPH_BROWSER_TESTS=0 (the browser test is skipped, with its reason)")
    return overrides


def build(spec_path: Path, overrides: dict[str, str], cloud_env: dict[str, str], source: Path = ROOT) -> int:
    """Run the buildspec in ``source``; the build's files go to ``source/.codebuild/<build id>/``."""
    spec = load_buildspec(spec_path)
    runtime = runtime_path(spec)
    counter = source / ".codebuild" / "build-number"
    counter.parent.mkdir(parents=True, exist_ok=True)
    number = int(counter.read_text()) + 1 if counter.is_file() else 1
    counter.write_text(str(number))
    build_id = f"jobgraph-local:{uuid.uuid4()}"
    build_dir = source / ".codebuild" / build_id.split(":", 1)[1]
    build_dir.mkdir(parents=True)
    region = cloud_env.get("AWS_REGION", "eu-west-1")
    declared = {key: str(value) for key, value in ((spec.get("env") or {}).get("variables") or {}).items()}
    env = {**os.environ, **cloud_env, **declared, **overrides}
    env.update(machine_overrides(env))
    env.update(codebuild_variables(build_id, number, int(time.time() * 1000), region, source))
    if runtime is not None:
        env["PATH"] = os.pathsep.join([runtime, env.get("PATH", "")])
    shell_name = (spec.get("env") or {}).get("shell", "bash")
    say(f"build {build_id} (#{number}) of {spec_path.name}, ENV={env.get('ENV')}, shell {shell_name}")
    with tempfile.TemporaryDirectory(prefix="codebuild-") as state_dir:
        shell = Shell(shutil.which(shell_name) or shell_name, env, source, Path(state_dir))
        outcome: dict[str, str] = {}
        succeeding = True
        for name in PHASES:
            phase = (spec.get("phases") or {}).get(name)
            if phase is None:
                continue
            shell.env["CODEBUILD_BUILD_SUCCEEDING"] = "1" if succeeding else "0"
            say(f"phase {name.upper()}")
            ok = run_phase(name, phase, shell)
            outcome[name] = "SUCCEEDED" if ok else "FAILED"
            if not ok:
                succeeding = False
                if str(phase.get("on-failure", "ABORT")).upper() == "CONTINUE":
                    continue
                if name in ENDS_THE_BUILD:
                    for later in PHASES[PHASES.index(name) + 1 :]:
                        if later in (spec.get("phases") or {}):
                            outcome[later] = "SKIPPED"
                    break
    archive = upload_artifacts(spec, source, build_dir, build_id, env)
    reports = gather_reports(spec, source, build_dir)
    summary = {"build_id": build_id, "number": number, "phases": outcome, "succeeded": succeeding,
               "artifacts": str(archive) if archive else None, "reports": reports}  # fmt: skip
    (build_dir / "build.json").write_text(json.dumps(summary, indent=2) + "\n")
    say("phases: " + ", ".join(f"{name} {status}" for name, status in outcome.items()))
    say(f"build {'SUCCEEDED' if succeeding else 'FAILED'}: {build_dir / 'build.json'}")
    return 0 if succeeding else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buildspec", type=Path, default=ROOT / "buildspec.yml")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="environment variable override (as StartBuild's), repeatable")  # fmt: skip
    args = parser.parse_args(argv)
    overrides = {"ENV": "local"}
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--env {item!r}: expected KEY=VALUE")
        overrides[key] = value
    from jobgraph.localcloud import daemon

    started = None
    directory = daemon.cloud_dir()
    if overrides["ENV"] == "local":
        found = daemon.running(directory)
        if found is None:
            say(f"starting the local cloud ({directory}); it is stopped after the build")
            state = started = daemon.up(directory)
        else:
            state = found[0]
            say(f"using the local cloud at {state.url}")
        cloud_env = state.exports()
    else:
        cloud_env = {}
    try:
        return build(args.buildspec, overrides, cloud_env)
    except BuildspecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if started is not None:
            say(daemon.down(directory))


if __name__ == "__main__":
    sys.exit(main())
