//! Structured JSON logs for CloudWatch. Fields carry request id, tenant and user; never
//! tokens, codes, secrets or raw WebAuthn payloads.

use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber once; level from `RUST_LOG`, else `AWS_LAMBDA_LOG_LEVEL`, else info.
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| {
            std::env::var("AWS_LAMBDA_LOG_LEVEL")
                .map_err(|e| e.to_string())
                .and_then(|level| {
                    EnvFilter::try_new(level.to_lowercase()).map_err(|e| e.to_string())
                })
        })
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .try_init();
}
