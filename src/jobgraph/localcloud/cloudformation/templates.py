"""Templates as CloudFormation reads them, for the local endpoint: a TemplateURL in every form S3 is addressed
by, read from the local S3; the SAM transform (samtranslator) with the stack's parameter values, its failure
in CloudFormation's words; the local endpoint's S3 URLs written as AWS writes them. changesets.py uses these.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

SAM_TRANSFORM = "AWS::Serverless-2016-10-31"
_VIRTUAL_HOST = re.compile(r"^(?P<bucket>.+)\.s3(?:[.-][a-z0-9-]+)*\.amazonaws\.com(?:\.cn)?$")


class TemplateLocationError(ValueError):
    """A TemplateURL that names no S3 object this endpoint can read."""


def parse_s3_url(url: str) -> tuple[str, str, str | None]:
    """(bucket, key, version id) of an S3 object URL in any of the forms of the module docstring."""
    parsed = urlparse(url)
    version = parse_qs(parsed.query).get("versionId", [None])[0]
    host = (parsed.hostname or "").lower()
    if parsed.scheme == "s3":
        bucket, key = parsed.netloc, parsed.path.lstrip("/")
    elif parsed.scheme not in ("http", "https") or not host:
        raise TemplateLocationError(f"TemplateURL must be an S3 URL (https://… or s3://…), not {url!r}")
    elif match := _VIRTUAL_HOST.match(host):
        bucket, key = match["bucket"], parsed.path.lstrip("/")
    elif host.endswith(".localhost"):
        bucket, key = host.removesuffix(".localhost"), parsed.path.lstrip("/")
    else:  # path style: s3[.-region].amazonaws.com, or any endpoint (the local one: 127.0.0.1, localhost)
        bucket, _, key = parsed.path.lstrip("/").partition("/")
    if not bucket or not key:
        raise TemplateLocationError(f"TemplateURL {url!r} names no bucket and key")
    return bucket, unquote(key), version


def read_s3_template(url: str, account_id: str, partition: str = "aws") -> str:
    """The text of the template object at ``url`` in the local S3 (a ValidationError names what is wrong)."""
    from moto.cloudformation.exceptions import ValidationError
    from moto.s3.models import s3_backends

    try:
        bucket, key, version = parse_s3_url(url)
    except TemplateLocationError as exc:
        raise ValidationError(message=str(exc)) from None
    try:
        found = s3_backends[account_id][partition].get_object(bucket, key, version_id=version)
    except Exception as exc:  # moto raises MissingBucket/MissingKey (its own exception types)
        raise ValidationError(message=f"S3 error: {getattr(exc, 'message', exc)} (s3://{bucket}/{key})") from None
    if found is None:
        raise ValidationError(message=f"S3 error: The specified key does not exist. (s3://{bucket}/{key})")
    return found.value.decode("utf-8")


# --- transforms -----------------------------------------------------------------------------------------
class TransformFailed(ValueError):
    """The template's transform failed; the message is CloudFormation's StatusReason."""


def parse_template(text: str | dict) -> dict:
    """A template's text (YAML with short tags, or JSON) as plain Python values."""
    if isinstance(text, dict):
        return json.loads(json.dumps(text))
    from cfnlint.decode import decode_str

    template, matches = decode_str(text)
    if template is None:
        raise TransformFailed(f"Template format error: {'; '.join(str(m.message) for m in matches[:3])}")
    return json.loads(json.dumps(template))


def _transforms(template: dict) -> list[str]:
    declared = template.get("Transform") or []
    return [declared] if isinstance(declared, str) else list(declared)


def _defaults_overridden(template: dict, given: dict[str, Any]) -> dict[str, str]:
    """The template's parameter defaults overridden by the values given (strings, as CloudFormation holds them),
    unchecked: unlike :func:`jobgraph.sam.parameters.parameter_values`, which refuses what CloudFormation would."""
    values = {
        name: str(spec["Default"])
        for name, spec in (template.get("Parameters") or {}).items()
        if isinstance(spec, dict) and "Default" in spec
    }
    values.update({name: str(value) for name, value in (given or {}).items()})
    return values


def process_template(text: str | dict, parameters: dict[str, Any], region: str) -> str | dict:
    """The template CloudFormation deploys: ``text`` itself, or its SAM transform as JSON text."""
    template = parse_template(text)
    transforms = _transforms(template)
    if not transforms:
        return text
    unsupported = [name for name in transforms if name != SAM_TRANSFORM]
    if unsupported:
        raise TransformFailed(f"Transform {', '.join(map(str, unsupported))} is not supported by the local cloud")
    from jobgraph.sam.template import transform_template

    try:
        transformed, _locations = transform_template(template, _defaults_overridden(template, parameters), region)
    except Exception as exc:  # samtranslator's InvalidDocumentException and friends: the change set fails
        raise TransformFailed(f"Transform {SAM_TRANSFORM} failed with: {_transform_message(exc)}") from None
    return json.dumps(transformed)


def _transform_message(exc: BaseException) -> str:
    causes = getattr(exc, "causes", None)
    if causes:
        return " ".join(getattr(cause, "message", str(cause)) for cause in causes)
    return getattr(exc, "message", None) or str(exc)


_LOCAL_S3_URL = re.compile(r"https?://(?:127\.0\.0\.1|localhost)(?::\d+)?/(?=[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/)")


def canonical_s3_urls(template: str, region: str) -> str:
    """S3 URLs of the local endpoint in a template, in AWS's own path-style form.

    `sam package` writes a nested application's ``Location`` (and a nested stack's TemplateURL) as an URL of the
    endpoint it uploaded to; with a local endpoint that is ``http://127.0.0.1:<port>/<bucket>/<key>``, which
    `sam delete` then refuses to parse ("not a valid S3 url") when it reads the original template back. The
    same object, named as AWS names it (``https://s3.<region>.amazonaws.com/<bucket>/<key>``), is what a stack
    deployed on AWS would show, and this endpoint reads both (parse_s3_url)."""
    return _LOCAL_S3_URL.sub(f"https://s3.{region}.amazonaws.com/", template)
