"""Notifications: anomalies that reach the notification severity, sent by email and webhook.

- `documents`: the notification document (one per anomaly and channel, ever) and its outcomes.
- `decide`: which anomalies notify, and the per-entity rate limit that folds the rest into digests.
- `message`: what a person reads (email text/HTML, webhook JSON with a Slack `text`).
- `signature`: HMAC-SHA256 webhook signatures and their verification (replays rejected).
- `smtp`, `webhook`: the I/O adapters; `channels` builds them from the settings.
- `ratelimit`: the per-entity window counter in Redis (and its in-memory twin).
- `service`: the two plain functions the tasks call, `notify_anomalies` and `notify_pending`.
"""
