"""The static report shows what extensions wrote (names, reasons, errors) as text, never as markup."""

from __future__ import annotations

from symphony_demo._html import render


def _results(text: str) -> dict:
    return {
        "tier": {"isolation": "guard", "why": "asked", "summary": "not a sandbox", "not_enforced": []},
        "consent": [
            {
                "extension": "acme.x",
                "permission": "fs.read {data}/*",
                "reason": text,
                "granted": True,
                "why": "ok",
            }
        ],
        "extensions": [
            {"id": "acme.x", "kind": "operator", "outcome": "failed", "message": text, "hint": text}
        ],
        "pipeline": {},
        "digits": {},
        "timings": {"total": 1.0},
    }


def test_text_from_extensions_is_escaped_and_the_report_runs_no_script():
    page = render(_results("<script>alert(1)</script>"))

    assert "<script" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 3
    assert "The host survived: <strong>0 of 1</strong>" in page
    assert "Did not run" in page
