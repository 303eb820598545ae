//! The bridge's decisions (`bus.bridge`): a local topic drained to a remote ferry
//! over HTTP (`handleHttp` of `ferry/workers`, or any endpoint that takes its
//! JSON). Without I/O, as the engine: the id each forwarded message carries, the
//! body of a batch, and what a response means for the batch. The driver leases,
//! posts and settles. Also what a remote consumer (`Bus.remote`) asks of
//! `POST /v1/topics/{topic}/receive`, and how it reads bytes back.
//!
//! The edge keeps a message with an id once within its dedup window, so a batch
//! posted again (its response lost, the tab closed before the ack) is stored once.

use crate::core::config::{ConsumerConfig, Ordering};
use crate::core::json;
use crate::core::limits::{BRIDGE_RETRY_AFTER_MS_MAX, DLQ_ERROR_BYTES_MAX};
use crate::core::message::{Message, ValueKind};

/// What a response (or its absence) means for the batch posted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// `2xx`: stored at the far end; the batch is acked.
    Forwarded,
    /// The far end will never take this batch as it is (`400`, `401`, `403`,
    /// `404`, `405`, `413`, `422`): dead-lettered now, with the reason.
    Refused { error: String },
    /// Worth trying again (`408`, `425`, `429`, `5xx`, a network error, anything
    /// else): after `delay_ms` when the far end said (`Retry-After`), else after
    /// the bridge's backoff.
    Transient { error: String, delay_ms: Option<u64> },
}

/// The header naming how a value that is bytes crosses JSON, which has no bytes.
pub const VALUE_ENCODING_HEADER: &str = "ferry-value-encoding";

/// The id a forwarded message carries: its own `id`, else one derived from where
/// it is stored, under `source` (the bridge's, unique per local bus), so that two
/// buses forwarding to one edge topic never share an id.
pub fn forward_id(source: &str, topic: &str, partition: u32, message: &Message) -> String {
    match &message.id {
        Some(id) => id.clone(),
        None => format!("{source}/{topic}/{}/{}", partition, message.offset),
    }
}

/// The body of `POST /v1/topics/{topic}/messages` for `messages` of one local
/// partition: `{ "messages": [{ key, value, headers, id }] }`, in their order.
/// A value that is bytes goes as base64 text with [`VALUE_ENCODING_HEADER`].
pub fn batch_body(source: &str, topic: &str, partition: u32, messages: &[Message]) -> String {
    let mut out = String::from("{\"messages\":[");
    for (i, message) in messages.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('{');
        if let Some(key) = &message.key {
            out.push_str("\"key\":");
            json::string(&mut out, key);
            out.push(',');
        }
        value_and_headers(&mut out, message);
        out.push_str(",\"id\":");
        json::string(&mut out, &forward_id(source, topic, partition, message));
        out.push('}');
    }
    out.push_str("]}");
    out
}

/// Appends `"value":...,"headers":{...}` of `message`: a JSON value as it is, a
/// string as a string, bytes as base64 text with [`VALUE_ENCODING_HEADER`]
/// (JSON has no bytes), as both the bridge's batches and a receive over HTTP
/// carry them.
pub fn value_and_headers(out: &mut String, message: &Message) {
    out.push_str("\"value\":");
    match message.value.kind {
        ValueKind::Json => out.push_str(&message.value.text()),
        ValueKind::String => json::string(out, &message.value.text()),
        ValueKind::Bytes => json::string(out, &base64(&message.value.bytes)),
    }
    out.push_str(",\"headers\":{");
    let encoding = (message.value.kind == ValueKind::Bytes).then_some((VALUE_ENCODING_HEADER, "base64"));
    let headers = message.headers.iter().map(|(name, value)| (name.as_str(), value.as_str())).chain(encoding);
    for (j, (name, value)) in headers.enumerate() {
        if j > 0 {
            out.push(',');
        }
        json::string(out, name);
        out.push(':');
        json::string(out, value);
    }
    out.push('}');
}

/// The body of `POST /v1/topics/{topic}/receive` for a consumer of `group` with
/// `config`: the edge's pull member takes the same options.
pub fn receive_body(group: &str, config: &ConsumerConfig, from_beginning: bool, max: u64) -> String {
    let mut out = String::from("{\"group\":");
    json::string(&mut out, group);
    let r = &config.retry;
    let ordering = if config.ordering == Ordering::Partition { "partition" } else { "none" };
    out.push_str(&format!(
        ",\"max\":{max},\"fromBeginning\":{from_beginning},\"ackTimeoutMs\":{},\"ordering\":\"{ordering}\",\"retry\":{{\"maxAttempts\":{},\"initialBackoffMs\":{},\"multiplier\":{},\"maxBackoffMs\":{},\"jitter\":{}}}",
        config.ack_timeout_ms, r.max_attempts, r.initial_backoff_ms, thousandths(r.multiplier), r.max_backoff_ms, r.jitter
    ));
    if let Some(topic) = &config.dead_letter_topic {
        out.push_str(",\"deadLetterTopic\":");
        json::string(&mut out, topic);
    }
    out.push('}');
    out
}

/// `x` (at least 0) to three decimals, without float formatting (which costs the
/// browser build kilobytes): `2.5` is `2.500`.
fn thousandths(x: f64) -> String {
    let n = (x * 1000.0).round() as u64;
    format!("{}.{:03}", n / 1000, n % 1000)
}

/// What the response with `status` means; `retry_after` is its `Retry-After`
/// header and `body` the start of its body (for the dead letter's reason).
pub fn verdict(status: u16, retry_after: Option<&str>, body: &str, now_ms: u64) -> Verdict {
    let error = || clip(format!("HTTP {status}: {}", body.trim()));
    match status {
        200..=299 => Verdict::Forwarded,
        400 | 401 | 403 | 404 | 405 | 413 | 422 => Verdict::Refused { error: error() },
        _ => Verdict::Transient { error: error(), delay_ms: retry_after.and_then(|value| retry_after_ms(value, now_ms)) },
    }
}

/// A post that got no response (offline, DNS, a refused connection, CORS).
pub fn network_error(message: &str) -> Verdict {
    Verdict::Transient { error: clip(format!("network error: {message}")), delay_ms: None }
}

/// `Retry-After` in ms from `now_ms`: delta-seconds or an HTTP date (IMF-fixdate),
/// capped at [`BRIDGE_RETRY_AFTER_MS_MAX`]; `None` when it reads as neither.
pub fn retry_after_ms(value: &str, now_ms: u64) -> Option<u64> {
    let value = value.trim();
    let ms = match value.parse::<u64>() {
        Ok(seconds) => seconds.saturating_mul(1000),
        Err(_) => http_date_ms(value)?.saturating_sub(now_ms),
    };
    Some(ms.min(BRIDGE_RETRY_AFTER_MS_MAX))
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` in ms since the epoch.
fn http_date_ms(value: &str) -> Option<u64> {
    let mut parts = value.split_whitespace();
    let (_weekday, day, month, year, time, zone) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if zone != "GMT" || parts.next().is_some() {
        return None;
    }
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month = MONTHS.iter().position(|m| *m == month)? as i64 + 1;
    let (day, year): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let mut hms = time.split(':').map(|n| n.parse::<i64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    if !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s;
    u64::try_from(seconds).ok().map(|s| s * 1000)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// At most [`DLQ_ERROR_BYTES_MAX`], cut on a character boundary.
fn clip(mut text: String) -> String {
    if text.len() > DLQ_ERROR_BYTES_MAX {
        let mut end = DLQ_ERROR_BYTES_MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The bytes of base64 text (padded or not); `None` when it is not base64.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let text = text.trim_end_matches('=').as_bytes();
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.chunks(4) {
        let n = chunk.iter().enumerate().try_fold(0u32, |n, (i, c)| Some(n | digit(*c)? << (18 - 6 * i)))?;
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::message::Value;

    fn message(offset: u64, key: Option<&str>, value: Value, id: Option<&str>) -> Message {
        Message { offset, timestamp_ms: 0, deliver_at_ms: 0, key: key.map(String::from), value, headers: vec![("trace".into(), "a\"b".into())], id: id.map(String::from) }
    }

    #[test]
    fn a_batch_is_the_json_handle_http_takes_with_an_id_on_every_message() {
        let messages = [
            message(7, Some("k1"), Value::json("{\"n\":1}"), Some("order-1")),
            message(8, None, Value::string("line\nbreak"), None),
            message(9, None, Value::bytes(vec![0, 255, 16, 1]), None),
        ];
        let body = batch_body("bus-a", "orders", 2, &messages);
        assert_eq!(
            body,
            concat!(
                r#"{"messages":["#,
                r#"{"key":"k1","value":{"n":1},"headers":{"trace":"a\"b"},"id":"order-1"},"#,
                r#"{"value":"line\u000abreak","headers":{"trace":"a\"b"},"id":"bus-a/orders/2/8"},"#,
                r#"{"value":"AP8QAQ==","headers":{"trace":"a\"b","ferry-value-encoding":"base64"},"id":"bus-a/orders/2/9"}"#,
                "]}"
            )
        );
    }

    #[test]
    fn responses_are_forwarded_refused_or_transient() {
        assert_eq!(verdict(200, None, "", 0), Verdict::Forwarded);
        assert_eq!(verdict(204, None, "", 0), Verdict::Forwarded);
        for status in [400, 401, 403, 404, 405, 413, 422] {
            assert!(matches!(verdict(status, None, "no", 0), Verdict::Refused { .. }), "{status}");
        }
        assert_eq!(verdict(401, None, " {\"error\":1} ", 0), Verdict::Refused { error: "HTTP 401: {\"error\":1}".into() });
        for status in [408, 425, 429, 500, 502, 503, 507, 302] {
            assert!(matches!(verdict(status, None, "", 0), Verdict::Transient { delay_ms: None, .. }), "{status}");
        }
        assert_eq!(network_error("Failed to fetch"), Verdict::Transient { error: "network error: Failed to fetch".into(), delay_ms: None });
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates_and_is_capped() {
        assert_eq!(verdict(429, Some("3"), "", 0), Verdict::Transient { error: "HTTP 429: ".into(), delay_ms: Some(3000) });
        // 1994-11-06T08:49:37Z is 784111777 s after the epoch.
        let at = 784_111_777_000;
        assert_eq!(retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", at - 1500), Some(1500));
        assert_eq!(retry_after_ms("Sun, 06 Nov 1994 08:49:37 GMT", at + 1), Some(0), "a date past is now");
        assert_eq!(retry_after_ms("99999999", 0), Some(BRIDGE_RETRY_AFTER_MS_MAX));
        for unreadable in ["soon", "Sun, 06 Nov 1994 08:49:37 PST", "Sun, 06 Foo 1994 08:49:37 GMT", "-1", ""] {
            assert_eq!(retry_after_ms(unreadable, 0), None, "{unreadable}");
        }
    }

    #[test]
    fn a_long_reason_is_clipped_on_a_character_boundary() {
        let Verdict::Refused { error } = verdict(400, None, &"é".repeat(2000), 0) else { panic!("refused") };
        assert!(error.len() <= DLQ_ERROR_BYTES_MAX && error.starts_with("HTTP 400: é"));
    }

    #[test]
    fn base64_pads_as_the_standard_says() {
        assert_eq!([base64(b""), base64(b"f"), base64(b"fo"), base64(b"foo"), base64(b"foob")], ["", "Zg==", "Zm8=", "Zm9v", "Zm9vYg=="]);
    }

    #[test]
    fn base64_reads_back_what_it_wrote_and_refuses_what_it_is_not() {
        for bytes in [&b""[..], b"f", b"fo", b"foo", b"foob", &[0, 255, 16, 1, 128]] {
            assert_eq!(base64_decode(&base64(bytes)).as_deref(), Some(bytes));
        }
        assert_eq!(base64_decode("Zm9vYg").as_deref(), Some(&b"foob"[..]), "unpadded");
        for bad in ["Z", "Zm9v!", "Zm 9v"] {
            assert_eq!(base64_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_receive_asks_for_the_consumer_options() {
        let config = ConsumerConfig { dead_letter_topic: Some("dead".into()), ..ConsumerConfig::default() };
        let body = receive_body("g\"1", &config, true, 50);
        assert!(body.starts_with(r#"{"group":"g\"1","max":50,"fromBeginning":true,"ackTimeoutMs":"#), "{body}");
        assert!(body.ends_with(r#","deadLetterTopic":"dead"}"#), "{body}");
    }
}
