//! Identifiers. Prefixes follow llama-stack (`resp-` for responses, which is what stored records and
//! chains already use) and the OpenAI API for items (`msg_`, `fc_`, `ws_`, `fs_`, `mcp_`, `mcpl_`).

use std::time::{SystemTime, UNIX_EPOCH};

pub fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4())
}

pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
