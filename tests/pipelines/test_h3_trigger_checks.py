"""Save-time checks of webhook and endpoint triggers."""

from __future__ import annotations

import base64

from app.pipelines.validate import validate_source

STEPS = """\
steps:
  - id: a
    uses: core.set
    with: {value: 1}
"""
WHSEC = "whsec_" + base64.b64encode(b"0123456789abcdef").decode()


def problems(triggers: str, secret_names: set[str] | None = None) -> list[tuple[str, str]]:
    source = f"version: 1\nname: p\ntriggers:\n{triggers}{STEPS}"
    result = validate_source(source, None, max_bytes=100_000, secret_names=secret_names)
    return [(problem.path, problem.code) for problem in result.problems]


def test_valid_webhook_and_endpoint_triggers() -> None:
    assert (
        problems(f"  - webhook: {{verify: {{standard_webhooks: {{secret: {WHSEC}, tolerance: 10m}}}}}}\n")
        == []
    )
    assert (
        problems('  - webhook: {verify: {standard_webhooks: {secret: "${{ secrets.SW }}"}}}\n', {"SW"}) == []
    )
    assert (
        problems("  - webhook: {dedupe_header: X-Delivery}\n  - webhook: {}\n  - endpoint: {format: csv}\n")
        == []
    )


def test_one_signature_scheme_per_hook() -> None:
    triggers = (
        "  - webhook:\n"
        "      verify:\n"
        "        hmac_sha256: {header: X-Sig, secret: abc}\n"
        f"        standard_webhooks: {{secret: {WHSEC}}}\n"
    )
    assert problems(triggers) == [("triggers[0].webhook.verify", "invalid_value")]


def test_a_written_out_standard_webhooks_secret_must_be_base64() -> None:
    found = problems("  - webhook: {verify: {standard_webhooks: {secret: whsec_not-base64!}}}\n")
    assert found == [("triggers[0].webhook.verify.standard_webhooks.secret", "invalid_value")]


def test_standard_webhooks_needs_a_secret_and_a_valid_tolerance() -> None:
    assert problems("  - webhook: {verify: {standard_webhooks: {}}}\n")
    assert problems(f"  - webhook: {{verify: {{standard_webhooks: {{secret: {WHSEC}, tolerance: soon}}}}}}\n")


def test_unknown_secret_in_a_verify_block() -> None:
    found = problems(
        '  - webhook: {verify: {hmac_sha256: {header: X, secret: "${{ secrets.NOPE }}"}}}\n', set()
    )
    assert found == [("triggers[0].webhook.verify.hmac_sha256.secret", "unknown_secret")]


def test_one_endpoint_trigger_per_pipeline() -> None:
    found = problems("  - endpoint: {format: json}\n  - endpoint: {format: rss}\n  - endpoint: {}\n")
    assert found == [("triggers[1].endpoint", "invalid_trigger")]
