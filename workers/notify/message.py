"""What a person reads: one message per immediate notification or per digest.

Email: a subject, plain text and HTML (escaped) saying who/what, when, score, severity, reasons
in words and how to review; for an incident also how many anomalies it holds and its span.
Webhook: JSON with the same facts and a Slack-compatible `text` (`&`, `<`, `>` escaped as Slack
requires). Entity ids and reasons are data: control characters are escaped wherever a person
reads them (subject, text, Slack text); the JSON fields keep them as they are.
Scores are in [0, 1], higher = more anomalous.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from workers.text import printable, slack_escape

MAX_DIGEST_LINES = 50


@dataclass(frozen=True)
class Message:
    """One outgoing message. `delivery_id` is stable: receivers can drop duplicates by it."""

    delivery_id: str
    subject: str
    text: str
    html: str
    payload: dict[str, Any]


def review_command(hint: str, anomaly_id: str) -> str:
    """The review instruction for one anomaly, from the `{id}` template in the settings."""
    return hint.replace("{id}", anomaly_id)


def _who(a: Mapping[str, Any]) -> str:
    """`user_id alice`; control characters escaped (`a\r\nb` in a subject header is a
    ValueError, in a terminal or a log line a forged second line)."""
    return printable(f"{a.get('entity_field') or 'entity'} {a.get('entity')}")


def _when(a: Mapping[str, Any]) -> str:
    start, end = a.get("window_start"), a.get("window_end")
    return f"{start} to {end}" if end and end != start else str(start)


def _is_incident(a: Mapping[str, Any]) -> bool:
    return a.get("kind") == "incident"


def _what(a: Mapping[str, Any]) -> str:
    """`detector login`, or for an incident `3 anomalies (combined, novelty)`."""
    if _is_incident(a):
        n = int(a.get("n_anomalies") or 0)
        return f"{n} {'anomaly' if n == 1 else 'anomalies'} ({a.get('detector')})"
    return f"detector {a.get('detector')}"


def _lines(a: Mapping[str, Any], hint: str) -> list[str]:
    reasons = a.get("reasons") or ["(no reason recorded)"]
    return [
        f"Who:      {_who(a)}",
        f"When:     {_when(a)} (UTC)",
        f"Severity: {a.get('severity')}   score {float(a.get('score') or 0):.2f} "
        f"(0-1, higher = more unusual)   {_what(a)}",
        "Why:",
        *[f"  - {printable(r)}" for r in reasons],
        f"Review:   {review_command(hint, a['id'])}",
        f"{'Incident' if _is_incident(a) else 'Anomaly'}:  {a['id']}",
    ]


def _html_block(a: Mapping[str, Any], hint: str) -> str:
    e = html.escape
    reasons = "".join(f"<li>{e(r)}</li>" for r in a.get("reasons") or ["(no reason recorded)"])
    return (
        f"<h3>{e(str(a.get('severity')).upper())}: {e(_who(a))}</h3>"
        f"<p><b>When:</b> {e(_when(a))} (UTC)<br>"
        f"<b>Score:</b> {float(a.get('score') or 0):.2f} (0-1, higher = more unusual)"
        f" &middot; {e(_what(a))}</p>"
        f"<p><b>Why:</b></p><ul>{reasons}</ul>"
        f"<p><b>Review:</b> <code>{e(review_command(hint, a['id']))}</code></p>"
    )


def _payload_item(a: Mapping[str, Any], hint: str) -> dict[str, Any]:
    return {**a, "review": review_command(hint, a["id"])}


def render(delivery_id: str, anomalies: Sequence[Mapping[str, Any]], *, hint: str) -> Message:
    """The message for one anomaly summary (immediate) or several of one entity (digest)."""
    if not anomalies:
        raise ValueError("a message needs at least one anomaly")
    first = anomalies[0]
    shown = anomalies[:MAX_DIGEST_LINES]
    more = len(anomalies) - len(shown)
    noun = "incidents" if all(_is_incident(a) for a in anomalies) else "anomalies"
    if len(anomalies) == 1:
        kind = "incident" if _is_incident(first) else "anomaly"
        size = f", {_what(first).split(' (')[0]}" if _is_incident(first) else ""
        subject = (
            f"[couchwatch] {first.get('severity')} {kind}: {_who(first)} "
            f"(score {float(first.get('score') or 0):.2f}{size})"
        )
        head = f"couchwatch found unusual behaviour for {_who(first)}."
        slack_head = (
            f":rotating_light: *{slack_escape(first.get('severity'))}* {kind} for "
            f"*{slack_escape(_who(first))}*"
        )
    else:
        subject = f"[couchwatch] digest: {len(anomalies)} {noun} for {_who(first)}"
        head = (
            f"couchwatch found {len(anomalies)} more {noun} for {_who(first)} while "
            "its notifications were rate-limited."
        )
        slack_head = (
            f":rotating_light: digest: *{len(anomalies)}* {noun} for *{slack_escape(_who(first))}*"
        )
    blocks = ["\n".join(_lines(a, hint)) for a in shown]
    tail = [f"... and {more} more: couchwatch {noun} --entity {printable(first.get('entity'))}"]
    tail = tail if more else []
    text = "\n\n".join([head, *blocks, *tail]) + "\n"
    body_html = (
        f"<html><body><p>{html.escape(head)}</p><hr>"
        + "<hr>".join(_html_block(a, hint) for a in shown)
        + "".join(f"<p>{html.escape(t)}</p>" for t in tail)
        + "</body></html>"
    )
    slack_lines = [slack_head] + [
        f"• {slack_escape(_when(a))}{' ' + slack_escape(_what(a)) if _is_incident(a) else ''} "
        f"score {float(a.get('score') or 0):.2f}: "
        f"{slack_escape(printable((a.get('reasons') or ['-'])[0]))} — "
        f"`{slack_escape(review_command(hint, a['id']))}`"
        for a in shown
    ]
    single = "couchwatch.incident" if _is_incident(first) else "couchwatch.anomaly"
    payload = {
        "type": single if len(anomalies) == 1 else "couchwatch.digest",
        "id": delivery_id,
        "entity": first.get("entity"),
        "entity_field": first.get("entity_field"),
        "text": "\n".join(slack_lines + [slack_escape(t) for t in tail]),
        "anomalies": [_payload_item(a, hint) for a in anomalies if not _is_incident(a)],
        "incidents": [_payload_item(a, hint) for a in anomalies if _is_incident(a)],
    }
    return Message(delivery_id, printable(subject), text, body_html, payload)
