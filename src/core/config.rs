//! Configuration of the bus, of topics and of consumers, with the checks that keep
//! every value inside `limits`.

use super::error::{FerryError, Result};
use super::limits::*;
use super::rng::Rng;

/// Topic and group names: 1 to 249 characters of `[A-Za-z0-9._-]` (Kafka's rule).
pub fn check_name(field: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() > NAME_LEN_MAX {
        return Err(FerryError::invalid(format!("{field} must be 1 to {NAME_LEN_MAX} characters, got {}", name.len())));
    }
    if let Some(bad) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(FerryError::invalid(format!("{field} '{name}' has '{bad}': only [A-Za-z0-9._-] are allowed")));
    }
    Ok(())
}

pub fn check_range(field: &str, value: u64, min: u64, max: u64) -> Result<()> {
    if value < min || value > max {
        return Err(FerryError::invalid(format!("{field} must be between {min} and {max}, got {value}")));
    }
    Ok(())
}

/// Settings of one bus, fixed when it opens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusConfig {
    pub auto_create_topics: bool,
    pub max_message_bytes: u64,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig { auto_create_topics: true, max_message_bytes: MESSAGE_BYTES_DEFAULT }
    }
}

impl BusConfig {
    pub fn check(&self) -> Result<()> {
        check_range("maxMessageBytes", self.max_message_bytes, 1, MESSAGE_BYTES_CEILING)
    }
}

/// A topic's settings (`createTopic` options).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicConfig {
    pub partitions: u32,
    /// `None`: kept until every group has committed past; `Some(ms)`: also removed
    /// once older than this.
    pub retention_ms: Option<u64>,
    /// `None`: unbounded; `Some(n)`: a send that would make a partition's unconsumed
    /// depth exceed `n` is refused with `QUEUE_FULL`.
    pub max_depth: Option<u64>,
    pub dedup_window_ms: u64,
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig { partitions: 1, retention_ms: None, max_depth: None, dedup_window_ms: 86_400_000 }
    }
}

impl TopicConfig {
    pub fn with_partitions(partitions: u32) -> Self {
        TopicConfig { partitions, ..TopicConfig::default() }
    }

    pub fn check(&self) -> Result<()> {
        check_range("partitions", u64::from(self.partitions), 1, u64::from(PARTITIONS_MAX))?;
        if let Some(ms) = self.retention_ms {
            check_range("retentionMs", ms, 1, RETENTION_MS_MAX)?;
        }
        if let Some(depth) = self.max_depth {
            check_range("maxDepth", depth, 1, SAFE_INTEGER_MAX)?;
        }
        check_range("dedupWindowMs", self.dedup_window_ms, 0, RETENTION_MS_MAX)
    }
}

/// `ordering` of a consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ordering {
    /// Offset n+1 of a partition is never handed out before offset n is settled.
    Partition,
    /// Messages are independent.
    None,
}

/// `retry` options of a consumer.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub initial_backoff_ms: u64,
    pub multiplier: f64,
    pub max_backoff_ms: u64,
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { max_attempts: 5, initial_backoff_ms: 1000, multiplier: 2.0, max_backoff_ms: 60_000, jitter: true }
    }
}

impl RetryPolicy {
    pub fn check(&self) -> Result<()> {
        check_range("retry.maxAttempts", u64::from(self.max_attempts), 1, u64::from(ATTEMPTS_MAX))?;
        check_range("retry.initialBackoffMs", self.initial_backoff_ms, 0, BACKOFF_MS_MAX)?;
        check_range("retry.maxBackoffMs", self.max_backoff_ms, 0, BACKOFF_MS_MAX)?;
        if !(self.multiplier.is_finite() && (1.0..=BACKOFF_MULTIPLIER_MAX).contains(&self.multiplier)) {
            // The value itself is left out: formatting an f64 would add 16 KB to the wasm
            // build, and the JavaScript face has already named it (src/js/args.rs).
            return Err(FerryError::invalid(format!("retry.multiplier must be a finite number between 1 and {}", BACKOFF_MULTIPLIER_MAX as u32)));
        }
        Ok(())
    }

    /// The wait before attempt `failed + 1`, after `failed` failed attempts:
    /// `min(maxBackoffMs, initialBackoffMs * multiplier^(failed-1))`, and with jitter
    /// uniform in `[d/2, d]`.
    pub fn backoff_ms(&self, failed: u32, rng: &mut Rng) -> u64 {
        let exponent = failed.saturating_sub(1) as i32;
        let grown = self.initial_backoff_ms as f64 * self.multiplier.powi(exponent);
        let capped = if grown.is_finite() { grown.min(self.max_backoff_ms as f64) } else { self.max_backoff_ms as f64 };
        let delay_ms = capped.round() as u64;
        if self.jitter {
            rng.between(delay_ms.div_ceil(2), delay_ms)
        } else {
            delay_ms
        }
    }
}

/// A consumer's settings (`bus.consumer(options)` less `groupId`).
#[derive(Clone, Debug, PartialEq)]
pub struct ConsumerConfig {
    pub retry: RetryPolicy,
    /// `None`: `${topic}.dlq`.
    pub dead_letter_topic: Option<String>,
    pub ack_timeout_ms: u64,
    pub session_timeout_ms: u64,
    pub heartbeat_interval_ms: u64,
    pub ordering: Ordering,
    pub concurrency: u32,
    /// `maxBatchSize`: under partition ordering, how many consecutive messages of
    /// one partition a poll may lease as one run.
    pub batch_size_max: u32,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            retry: RetryPolicy::default(),
            dead_letter_topic: None,
            ack_timeout_ms: 30_000,
            session_timeout_ms: 10_000,
            heartbeat_interval_ms: 3_000,
            ordering: Ordering::Partition,
            concurrency: 1,
            batch_size_max: BATCH_SIZE_DEFAULT,
        }
    }
}

impl ConsumerConfig {
    pub fn check(&self) -> Result<()> {
        self.retry.check()?;
        if let Some(topic) = &self.dead_letter_topic {
            check_name("deadLetterTopic", topic)?;
        }
        check_range("ackTimeoutMs", self.ack_timeout_ms, ACK_TIMEOUT_MS_MIN, ACK_TIMEOUT_MS_MAX)?;
        check_range("sessionTimeoutMs", self.session_timeout_ms, SESSION_TIMEOUT_MS_MIN, SESSION_TIMEOUT_MS_MAX)?;
        check_range("heartbeatIntervalMs", self.heartbeat_interval_ms, 1, self.session_timeout_ms.saturating_sub(1).max(1))?;
        check_range("concurrency", u64::from(self.concurrency), 1, u64::from(CONCURRENCY_MAX))?;
        check_range("maxBatchSize", u64::from(self.batch_size_max), 1, u64::from(BATCH_SIZE_MAX))
    }

    /// Where messages of `topic` go once they fail every attempt.
    pub fn dead_letter_topic_for(&self, topic: &str) -> String {
        self.dead_letter_topic.clone().unwrap_or_else(|| format!("{topic}.dlq"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("topic", "order.placed").is_ok());
        assert!(check_name("topic", "A-z_0.9").is_ok());
        assert!(check_name("topic", &"a".repeat(249)).is_ok());
        for bad in ["", "a b", "a/b", "ü", "a:b"] {
            let e = check_name("topic", bad).unwrap_err();
            assert!(e.message.contains("topic"), "{e}");
        }
        assert!(check_name("topic", &"a".repeat(250)).is_err());
    }

    #[test]
    fn backoff_without_jitter_is_exact() {
        let p = RetryPolicy { jitter: false, ..RetryPolicy::default() };
        let mut rng = Rng::new(0);
        let waits: Vec<u64> = (1..=8).map(|n| p.backoff_ms(n, &mut rng)).collect();
        assert_eq!(waits, vec![1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000]);
    }

    #[test]
    fn backoff_with_jitter_is_in_half_to_full() {
        let p = RetryPolicy::default();
        let mut rng = Rng::new(42);
        for n in 1..=10 {
            let d = RetryPolicy { jitter: false, ..p.clone() }.backoff_ms(n, &mut rng);
            for _ in 0..200 {
                let w = p.backoff_ms(n, &mut rng);
                assert!(w >= d / 2 && w <= d, "attempt {n}: {w} not in [{}, {d}]", d / 2);
            }
        }
    }

    #[test]
    fn huge_exponents_cap() {
        let p = RetryPolicy { max_attempts: 1000, multiplier: 1000.0, jitter: false, ..RetryPolicy::default() };
        assert_eq!(p.backoff_ms(999, &mut Rng::new(0)), 60_000);
    }

    #[test]
    fn consumer_config_ranges() {
        assert!(ConsumerConfig::default().check().is_ok());
        let bad = [
            ConsumerConfig { concurrency: 0, ..Default::default() },
            ConsumerConfig { batch_size_max: 0, ..Default::default() },
            ConsumerConfig { batch_size_max: BATCH_SIZE_MAX + 1, ..Default::default() },
            ConsumerConfig { ack_timeout_ms: 0, ..Default::default() },
            ConsumerConfig { retry: RetryPolicy { max_attempts: 0, ..Default::default() }, ..Default::default() },
            ConsumerConfig { retry: RetryPolicy { multiplier: f64::NAN, ..Default::default() }, ..Default::default() },
            ConsumerConfig { heartbeat_interval_ms: 10_000, ..Default::default() },
            ConsumerConfig { dead_letter_topic: Some("bad name".into()), ..Default::default() },
        ];
        for c in bad {
            assert_eq!(c.check().unwrap_err().code, super::super::error::ErrorCode::InvalidArgument);
        }
    }
}
