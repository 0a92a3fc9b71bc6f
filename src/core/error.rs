//! The one error type of the core. The glue maps it to Python exceptions in exactly one place.

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum CoreError {
    /// The request is malformed; `field` is a path into the request such as `input[2].role`.
    InvalidInput { field: String, message: String },
    /// Something the request refers to does not exist (a previous response id, say).
    NotFound { what: String },
    /// The driver called the core out of order: a bug in the driver, never the user's fault.
    Protocol(String),
}

impl CoreError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        CoreError::InvalidInput {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn protocol(message: impl Into<String>) -> Self {
        CoreError::Protocol(message.into())
    }
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoreError::InvalidInput { field, message } => write!(f, "{field}: {message}"),
            CoreError::NotFound { what } => write!(f, "{what} not found"),
            CoreError::Protocol(message) => {
                write!(f, "responses-rs driver protocol error: {message}")
            }
        }
    }
}

impl std::error::Error for CoreError {}

pub type Result<T> = std::result::Result<T, CoreError>;
