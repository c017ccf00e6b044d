//! Structured JSON logs for CloudWatch. Fields carry request id, tenant and user; never
//! tokens, codes, secrets or raw WebAuthn payloads.

use std::str::FromStr;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the JSON subscriber once; level from `RUST_LOG`, else `AWS_LAMBDA_LOG_LEVEL`, else
/// info. `RUST_LOG` takes a level and `target=level` pairs (`info,shared=debug`): the subset of
/// `EnvFilter`'s syntax without span and field filters, which would need regex in every binary.
pub fn init() {
    let _ = tracing_subscriber::registry()
        .with(log_filter(
            std::env::var("RUST_LOG").ok().as_deref(),
            std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref(),
        ))
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .with_target(false),
        )
        .try_init();
}

/// The filter of [`init`]: the first of `rust_log` and `lambda_level` that parses, else info.
fn log_filter(rust_log: Option<&str>, lambda_level: Option<&str>) -> Targets {
    [rust_log, lambda_level]
        .into_iter()
        .flatten()
        .find_map(|spec| Targets::from_str(&spec.trim().to_lowercase()).ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::level_filters::LevelFilter;

    #[test]
    fn the_level_comes_from_rust_log_then_lambda_then_info() {
        let default = |t: Targets| t.default_level();
        assert_eq!(
            default(log_filter(Some("debug"), Some("ERROR"))),
            Some(LevelFilter::DEBUG)
        );
        assert_eq!(
            default(log_filter(None, Some("WARN"))),
            Some(LevelFilter::WARN)
        );
        assert_eq!(
            default(log_filter(Some("[span]=x"), Some("WARN"))),
            Some(LevelFilter::WARN)
        );
        assert_eq!(default(log_filter(None, None)), Some(LevelFilter::INFO));
        let pairs = log_filter(Some("warn,shared=debug"), None);
        assert!(pairs.would_enable("shared::store", &tracing::Level::DEBUG));
        assert!(!pairs.would_enable("hyper", &tracing::Level::INFO));
    }
}
