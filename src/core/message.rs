//! Messages as producers hand them in, as the log stores them (packed into chunks),
//! and as consumers receive them.

use std::sync::Arc;

use super::codec::{Reader, Writer};
use super::error::{FerryError, Result};

/// A topic, group or member name, shared cheaply between records and keys.
pub type Name = Arc<str>;

/// How a value was given, so it is delivered the same way (pkg/README.md: a string as a
/// string, a `Uint8Array` as bytes, anything else as JSON).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueKind {
    String,
    Bytes,
    /// UTF-8 JSON text.
    Json,
}

impl ValueKind {
    fn tag(self) -> u8 {
        match self {
            ValueKind::String => 0,
            ValueKind::Bytes => 1,
            ValueKind::Json => 2,
        }
    }

    fn from_tag(tag: u8) -> Result<Self> {
        match tag {
            0 => Ok(ValueKind::String),
            1 => Ok(ValueKind::Bytes),
            2 => Ok(ValueKind::Json),
            _ => Err(FerryError::storage(format!("corrupt record: unknown value kind {tag}"))),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Value {
    pub kind: ValueKind,
    pub bytes: Vec<u8>,
}

impl Value {
    pub fn string(s: impl Into<String>) -> Self {
        Value { kind: ValueKind::String, bytes: s.into().into_bytes() }
    }

    pub fn bytes(b: impl Into<Vec<u8>>) -> Self {
        Value { kind: ValueKind::Bytes, bytes: b.into() }
    }

    pub fn json(text: impl Into<String>) -> Self {
        Value { kind: ValueKind::Json, bytes: text.into().into_bytes() }
    }

    /// The value as text, for strings and JSON (lossy for bytes).
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.bytes)
    }
}

/// One message of a `send`, as the producer gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub key: Option<String>,
    pub value: Value,
    pub headers: Vec<(String, String)>,
    /// Idempotency key: a repeat within the topic's dedup window is not appended again.
    pub id: Option<String>,
    pub delay_ms: u64,
    /// An explicit partition; otherwise the key's, or round-robin.
    pub partition: Option<u32>,
}

impl OutgoingMessage {
    pub fn new(value: Value) -> Self {
        OutgoingMessage { key: None, value, headers: Vec::new(), id: None, delay_ms: 0, partition: None }
    }

    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn with_delay_ms(mut self, delay_ms: u64) -> Self {
        self.delay_ms = delay_ms;
        self
    }

    pub fn with_partition(mut self, partition: u32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// What counts against `maxMessageBytes`: key + value + headers, encoded.
    pub fn encoded_bytes(&self) -> u64 {
        let key = self.key.as_ref().map_or(0, |k| k.len());
        let headers: usize = self.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
        (key + self.value.bytes.len() + headers) as u64
    }
}

/// A stored message, as a consumer receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub offset: u64,
    pub timestamp_ms: u64,
    /// Not delivered to any group before this time (`timestamp + delayMs`).
    pub deliver_at_ms: u64,
    pub key: Option<String>,
    pub value: Value,
    pub headers: Vec<(String, String)>,
    pub id: Option<String>,
}

impl Message {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A run of consecutive messages of one partition, packed into one buffer: one
/// storage record (Kafka's segment idea, at the scale of an IndexedDB record).
///
/// Shared, not copied, between the engine and a memory store once stored; a chunk
/// written in the commit under way is still the engine's alone, and later sends of
/// that commit extend it in place ([`ChunkBuilder::resume`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub base_offset: u64,
    data: Arc<Vec<u8>>,
    /// End position in `data` of each message.
    ends: Arc<Vec<u32>>,
}

impl Chunk {
    /// Rebuilds a chunk from its stored bytes, checking every message decodes.
    pub fn from_bytes(base_offset: u64, data: &[u8]) -> Result<Chunk> {
        let mut reader = Reader::new(data);
        let mut ends = Vec::new();
        while !reader.is_empty() {
            decode_body(&mut reader)?;
            ends.push((data.len() - reader.remaining()) as u32);
        }
        Ok(Chunk { base_offset, data: Arc::new(data.to_vec()), ends: Arc::new(ends) })
    }

    /// The stored form: the messages back to back.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    pub fn len(&self) -> u64 {
        self.ends.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// One past the last offset in this chunk.
    pub fn end_offset(&self) -> u64 {
        self.base_offset + self.len()
    }

    fn slice(&self, offset: u64) -> Option<&[u8]> {
        let index = usize::try_from(offset.checked_sub(self.base_offset)?).ok()?;
        let end = *self.ends.get(index)? as usize;
        let start = if index == 0 { 0 } else { self.ends[index - 1] as usize };
        self.data.get(start..end)
    }

    /// The message at `offset`, if this chunk holds it.
    pub fn message(&self, offset: u64) -> Option<Result<Message>> {
        let slice = self.slice(offset)?;
        Some(decode_body(&mut Reader::new(slice)).map(|body| body.into_message(offset)))
    }

    /// `(timestamp_ms, deliver_at_ms)` of the message at `offset`, without decoding it.
    pub fn times(&self, offset: u64) -> Option<(u64, u64)> {
        let mut reader = Reader::new(self.slice(offset)?);
        let timestamp_ms = reader.u64().ok()?;
        let delay_ms = reader.u64().ok()?;
        Some((timestamp_ms, timestamp_ms.saturating_add(delay_ms)))
    }

    /// Gives back the spare capacity a chunk extended in place may hold; a chunk
    /// shared with a store is left as it is.
    pub fn shrink(&mut self) {
        if let Some(data) = Arc::get_mut(&mut self.data) {
            data.shrink_to_fit();
        }
        if let Some(ends) = Arc::get_mut(&mut self.ends) {
            ends.shrink_to_fit();
        }
    }
}

/// Packs messages into chunks of at most `CHUNK_MESSAGES_MAX` messages and about
/// `CHUNK_BYTES_MAX` bytes.
pub struct ChunkBuilder {
    base_offset: u64,
    writer: Writer,
    ends: Vec<u32>,
}

impl ChunkBuilder {
    pub fn new(base_offset: u64) -> Self {
        ChunkBuilder { base_offset, writer: Writer::default(), ends: Vec::new() }
    }

    /// Goes on appending to `chunk`: in place when nothing else holds it.
    pub fn resume(chunk: Chunk) -> Self {
        let buf = Arc::try_unwrap(chunk.data).unwrap_or_else(|shared| (*shared).clone());
        let ends = Arc::try_unwrap(chunk.ends).unwrap_or_else(|shared| (*shared).clone());
        ChunkBuilder { base_offset: chunk.base_offset, writer: Writer { buf }, ends }
    }

    pub fn is_full(&self) -> bool {
        self.ends.len() >= super::limits::CHUNK_MESSAGES_MAX || self.writer.buf.len() >= super::limits::CHUNK_BYTES_MAX
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn next_offset(&self) -> u64 {
        self.base_offset + self.ends.len() as u64
    }

    #[allow(clippy::too_many_arguments)]
    pub fn push(&mut self, timestamp_ms: u64, delay_ms: u64, key: Option<&str>, value: &Value, headers: &[(String, String)], id: Option<&str>) {
        let w = &mut self.writer;
        w.u64(timestamp_ms);
        w.u64(delay_ms);
        w.u8(value.kind.tag());
        w.opt_str(key);
        w.opt_str(id);
        w.bytes(&value.bytes);
        w.u64(headers.len() as u64);
        for (name, header_value) in headers {
            w.str(name);
            w.str(header_value);
        }
        self.ends.push(w.buf.len() as u32);
    }

    pub fn finish(self) -> Chunk {
        Chunk { base_offset: self.base_offset, data: Arc::new(self.writer.buf), ends: Arc::new(self.ends) }
    }
}

struct Body {
    timestamp_ms: u64,
    delay_ms: u64,
    kind: ValueKind,
    key: Option<String>,
    id: Option<String>,
    value: Vec<u8>,
    headers: Vec<(String, String)>,
}

impl Body {
    fn into_message(self, offset: u64) -> Message {
        Message {
            offset,
            timestamp_ms: self.timestamp_ms,
            deliver_at_ms: self.timestamp_ms.saturating_add(self.delay_ms),
            key: self.key,
            value: Value { kind: self.kind, bytes: self.value },
            headers: self.headers,
            id: self.id,
        }
    }
}

fn decode_body(r: &mut Reader<'_>) -> Result<Body> {
    let timestamp_ms = r.u64()?;
    let delay_ms = r.u64()?;
    let kind = ValueKind::from_tag(r.u8()?)?;
    let key = r.opt_str()?.map(str::to_owned);
    let id = r.opt_str()?.map(str::to_owned);
    let value = r.bytes()?.to_vec();
    let count = r.u64()?;
    if count > super::limits::STORED_HEADERS_MAX as u64 {
        return Err(FerryError::storage("corrupt record: too many headers"));
    }
    let mut headers = Vec::with_capacity(count as usize);
    for _ in 0..count {
        headers.push((r.str()?.to_owned(), r.str()?.to_owned()));
    }
    Ok(Body { timestamp_ms, delay_ms, kind, key, id, value, headers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_round_trip() {
        let mut b = ChunkBuilder::new(10);
        b.push(1000, 0, Some("k"), &Value::string("a"), &[], None);
        b.push(1001, 50, None, &Value::bytes(vec![0, 255]), &[("h".into(), "v".into())], Some("id-1"));
        let chunk = b.finish();
        assert_eq!(chunk.len(), 2);
        assert_eq!(chunk.end_offset(), 12);
        let m = chunk.message(11).unwrap().unwrap();
        assert_eq!(m.offset, 11);
        assert_eq!(m.deliver_at_ms, 1051);
        assert_eq!(m.value, Value::bytes(vec![0, 255]));
        assert_eq!(m.header("h"), Some("v"));
        assert_eq!(m.id.as_deref(), Some("id-1"));
        assert_eq!(chunk.times(10), Some((1000, 1000)));
        assert!(chunk.message(9).is_none());
        assert!(chunk.message(12).is_none());
        let again = Chunk::from_bytes(10, chunk.bytes()).unwrap();
        assert_eq!(again, chunk);
    }

    #[test]
    fn corrupt_chunk_bytes_are_an_error() {
        let mut b = ChunkBuilder::new(0);
        b.push(1, 0, Some("key"), &Value::string("value"), &[], None);
        let chunk = b.finish();
        let bytes = chunk.bytes();
        for cut in 1..bytes.len() {
            assert!(Chunk::from_bytes(0, &bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}
