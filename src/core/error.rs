//! The error every fallible engine operation returns: a code from pkg/README.md and a
//! message that names the offending field or value.

use std::fmt;

/// The error codes of pkg/README.md, one per way an operation can be refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    InvalidArgument,
    TopicConflict,
    UnknownTopic,
    MessageTooLarge,
    QueueFull,
    QuotaExceeded,
    Storage,
    IncompatibleStorage,
    Closed,
}

impl ErrorCode {
    /// The code as JavaScript sees it in `FerryError.code`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "INVALID_ARGUMENT",
            ErrorCode::TopicConflict => "TOPIC_CONFLICT",
            ErrorCode::UnknownTopic => "UNKNOWN_TOPIC",
            ErrorCode::MessageTooLarge => "MESSAGE_TOO_LARGE",
            ErrorCode::QueueFull => "QUEUE_FULL",
            ErrorCode::QuotaExceeded => "QUOTA_EXCEEDED",
            ErrorCode::Storage => "STORAGE",
            ErrorCode::IncompatibleStorage => "INCOMPATIBLE_STORAGE",
            ErrorCode::Closed => "CLOSED",
        }
    }

    /// The code [`ErrorCode::as_str`] gives as `text`, read back (an error that
    /// crossed between Durable Objects as data).
    pub fn parse(text: &str) -> Option<ErrorCode> {
        use ErrorCode::*;
        [InvalidArgument, TopicConflict, UnknownTopic, MessageTooLarge, QueueFull, QuotaExceeded, Storage, IncompatibleStorage, Closed]
            .into_iter()
            .find(|code| code.as_str() == text)
    }
}

/// A refused operation. Whatever refused it changed nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FerryError {
    pub code: ErrorCode,
    pub message: String,
}

impl FerryError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        FerryError { code, message: message.into() }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }

    pub fn unknown_topic(topic: &str) -> Self {
        Self::new(ErrorCode::UnknownTopic, format!("topic '{topic}' does not exist and autoCreateTopics is false"))
    }

    pub fn unknown_partition(topic: &str, partition: u32) -> Self {
        Self::new(ErrorCode::UnknownTopic, format!("partition {partition} of topic '{topic}' does not exist"))
    }

    pub fn storage(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Storage, message)
    }
}

impl fmt::Display for FerryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for FerryError {}

pub type Result<T, E = FerryError> = std::result::Result<T, E>;
