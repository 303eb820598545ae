//! What `handleHttp` says about consuming over HTTP, where no consumer lives
//! between requests: `POST /v1/topics/{topic}/receive` answers the messages
//! leased as JSON, each with a receipt, and `POST /v1/acks` settles by receipt
//! alone. A receipt names everything a settle needs (the group, and the
//! message's topic, partition, offset, attempt and lease generation), so it
//! can be settled through any isolate's client. `GET /v1/topics/{topic}/messages`
//! answers a partition's messages read without leasing them, as the inspector
//! browses them.

use crate::core::bridge::value_and_headers;
use crate::core::engine::Browsed;
use crate::core::{json, Delivery, FerryError, Message, Receipt, Result};

/// Separates a receipt's parts: names are `[A-Za-z0-9._-]` (`check_name`), so it
/// never occurs in one.
const RECEIPT_SEPARATOR: char = ':';

/// The receipt of a message leased to `group`: opaque to callers, who hand it
/// back to `POST /v1/acks`.
pub fn receipt(group: &str, receipt: &Receipt) -> String {
    let Receipt { topic, partition, offset, attempt, generation } = receipt;
    let s = RECEIPT_SEPARATOR;
    format!("{group}{s}{topic}{s}{partition}{s}{offset}{s}{attempt}{s}{generation}")
}

/// The group and receipt in a receipt's text; `field` names it in the refusal.
pub fn parse_receipt(text: &str, field: &str) -> Result<(String, Receipt)> {
    let wrong = || FerryError::invalid(format!("{field} is not a receipt that receive gave: '{text}'"));
    let parts: Vec<&str> = text.split(RECEIPT_SEPARATOR).collect();
    let [group, topic, partition, offset, attempt, generation] = parts[..] else { return Err(wrong()) };
    crate::core::config::check_name(field, group).map_err(|_| wrong())?;
    crate::core::config::check_name(field, topic).map_err(|_| wrong())?;
    let number = |part: &str| part.parse::<u64>().ok().filter(|_| part.bytes().all(|b| b.is_ascii_digit())).ok_or_else(wrong);
    let narrow = |part: &str| u32::try_from(number(part)?).map_err(|_| wrong());
    let receipt = Receipt { topic: topic.into(), partition: narrow(partition)?, offset: number(offset)?, attempt: narrow(attempt)?, generation: narrow(generation)? };
    Ok((group.to_string(), receipt))
}

/// The body answering a receive for `group`: `{ "messages": [{ topic, partition,
/// offset, key, value, headers, timestamp, id, attempt, receipt }] }`, in the
/// order leased; a value that is bytes is base64 text with the header
/// `ferry-value-encoding: base64`.
pub fn received_body(group: &str, deliveries: &[Delivery]) -> String {
    let mut out = String::from("{\"messages\":[");
    for (i, delivery) in deliveries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"topic\":");
        json::string(&mut out, &delivery.topic);
        out.push_str(&format!(",\"partition\":{},", delivery.partition));
        message_fields(&mut out, &delivery.message);
        out.push_str(&format!(",\"attempt\":{},\"receipt\":", delivery.attempt));
        json::string(&mut out, &receipt(group, &delivery.receipt()));
        out.push('}');
    }
    out.push_str("]}");
    out
}

/// The body answering `GET /v1/topics/{topic}/messages`: `{ lowOffset, highOffset,
/// nextOffset, messages: [{ offset, key, value, headers, timestamp, id, attempt,
/// redriven }] }`, values as a receive gives them.
pub fn browsed_body(page: &Browsed) -> String {
    let mut out = format!("{{\"lowOffset\":{},\"highOffset\":{},\"nextOffset\":{},\"messages\":[", page.low_offset, page.high_offset, page.next_offset);
    for (i, browsed) in page.messages.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('{');
        message_fields(&mut out, &browsed.message);
        out.push_str(&format!(",\"attempt\":{},\"redriven\":{}}}", browsed.attempt.unwrap_or(0), browsed.redriven));
    }
    out.push_str("]}");
    out
}

/// `"offset":…,"key":…,"value":…,"headers":…,"timestamp":…,"id":…` of a message.
fn message_fields(out: &mut String, message: &Message) {
    out.push_str(&format!("\"offset\":{},\"key\":", message.offset));
    match &message.key {
        Some(key) => json::string(out, key),
        None => out.push_str("null"),
    }
    out.push(',');
    value_and_headers(out, message);
    out.push_str(&format!(",\"timestamp\":{},\"id\":", message.timestamp_ms));
    match &message.id {
        Some(id) => json::string(out, id),
        None => out.push_str("null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::engine::BrowsedMessage;
    use crate::core::Value;

    fn delivery(offset: u64, key: Option<&str>, value: Value) -> Delivery {
        let message =
            Message { offset, timestamp_ms: 1_700_000_000_000, deliver_at_ms: 0, key: key.map(String::from), value, headers: vec![("h".into(), "1".into())], id: None };
        Delivery { topic: "orders".into(), partition: 3, attempt: 2, generation: 1, message }
    }

    #[test]
    fn a_receipt_reads_back_as_what_it_was_made_of() {
        let r = Receipt { topic: "orders.v2".into(), partition: 3, offset: 9_007_199_254_740_991, attempt: 2, generation: 7 };
        let text = receipt("fulfil-ment_1", &r);
        assert_eq!(parse_receipt(&text, "receipts[0].receipt").unwrap(), ("fulfil-ment_1".to_string(), r));
    }

    #[test]
    fn a_receipt_not_made_by_receive_is_refused_naming_the_field() {
        for bad in [
            "",
            "g:orders:0:1:1",
            "g:orders:0:1:1:0:9",
            "g:orders:-1:1:1:0",
            "g:orders:0:+1:1:0",
            "g:or ders:0:1:1:0",
            ":orders:0:1:1:0",
            "g:orders:4294967296:1:1:0",
            "g:orders:0:1:1:x",
        ] {
            let error = parse_receipt(bad, "receipts[3].receipt").unwrap_err();
            assert!(error.message.starts_with("receipts[3].receipt is not a receipt"), "{bad}: {}", error.message);
        }
    }

    #[test]
    fn received_messages_are_json_with_bytes_as_base64_and_a_receipt_each() {
        let body = received_body("g", &[delivery(5, Some("k"), Value::json("{\"n\":1}")), delivery(6, None, Value::bytes(vec![1, 2]))]);
        assert_eq!(
            body,
            concat!(
                r#"{"messages":["#,
                r#"{"topic":"orders","partition":3,"offset":5,"key":"k","value":{"n":1},"headers":{"h":"1"},"timestamp":1700000000000,"id":null,"attempt":2,"receipt":"g:orders:3:5:2:1"},"#,
                r#"{"topic":"orders","partition":3,"offset":6,"key":null,"value":"AQI=","headers":{"h":"1","ferry-value-encoding":"base64"},"timestamp":1700000000000,"id":null,"attempt":2,"receipt":"g:orders:3:6:2:1"}"#,
                "]}"
            )
        );
    }

    #[test]
    fn a_browsed_page_is_json_with_each_message_attempt_and_whether_redriven() {
        let message = delivery(7, None, Value::bytes(vec![255])).message;
        let page = Browsed { low_offset: 2, high_offset: 9, next_offset: 8, messages: vec![BrowsedMessage { message, attempt: Some(3), redriven: true }] };
        assert_eq!(
            browsed_body(&page),
            concat!(
                r#"{"lowOffset":2,"highOffset":9,"nextOffset":8,"messages":["#,
                r#"{"offset":7,"key":null,"value":"/w==","headers":{"h":"1","ferry-value-encoding":"base64"},"timestamp":1700000000000,"id":null,"attempt":3,"redriven":true}"#,
                "]}"
            )
        );
    }
}
