"""Audit the lock file for known vulnerabilities with pip-audit; `make audit` (part of `make test`).

pip-audit asks a vulnerability service about every locked version: PyPI's first, OSV's if PyPI
cannot say. A machine that reaches neither (offline, or behind a registry mirror that serves
packages but not the vulnerability API) cannot audit: that is said on stderr and the audit is
skipped, so that `make test` still runs there. A known vulnerability fails the audit.

Usage: python .ci/audit.py requirements.lock
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def audit(lock: Path, service: str) -> tuple[list[dict[str, object]], int] | None:
    """The vulnerable packages and how many were audited; None when the service did not answer."""
    command = [
        sys.executable,
        "-m",
        "pip_audit",
        "--requirement",
        str(lock),
        "--require-hashes",
        "--disable-pip",  # the lock is complete and hashed: nothing to resolve or install
        "--vulnerability-service",
        service,
        "--format",
        "json",
        "--progress-spinner",
        "off",
        "--timeout",
        "20",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"audit: pip-audit ({service}) did not answer: {tail}", file=sys.stderr)
        return None
    dependencies = report.get("dependencies", [])
    audited = [d for d in dependencies if "skip_reason" not in d]
    if not audited:
        return None
    return [d for d in audited if d.get("vulns")], len(audited)


def main() -> int:
    lock = Path(sys.argv[1] if len(sys.argv) > 1 else "requirements.lock")
    for service in ("pypi", "osv"):
        result = audit(lock, service)
        if result is None:
            continue
        vulnerable, audited = result
        if not vulnerable:
            print(f"audit: {audited} locked packages, no known vulnerabilities ({service})")
            return 0
        for dep in vulnerable:
            for vuln in dep["vulns"]:  # type: ignore[attr-defined]
                fixed = ", ".join(vuln.get("fix_versions", [])) or "no fixed release yet"
                print(f"audit: {dep['name']} {dep['version']}: {vuln['id']} (fixed in {fixed})")
        print(f"audit: {len(vulnerable)} locked package(s) with known vulnerabilities; raise "
              "their floors in pyproject.toml and run `make lock`", file=sys.stderr)
        return 1
    print(
        "audit: skipped: no vulnerability service could be reached from here "
        "(pip-audit needs PyPI's JSON API or OSV); CI on a connected machine runs it",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
