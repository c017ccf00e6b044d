//! The DynamoDB client's retry and timeout settings, explicit rather than the SDK's defaults.
//!
//! Every function runs with a 10 s Lambda timeout (`template.yaml`, `Globals.Function.Timeout`).
//! A request whose store is throttled, failing or unreachable must end well before that, with
//! the product's 503 `store_unavailable` (and `Retry-After`), not with API Gateway's bare 5xx
//! for a timed-out function. The SDK's defaults do not bound a call's time: no attempt or
//! operation timeout, and a 1 s initial backoff. So one failing store call is bounded here to
//! [`OPERATION_TIMEOUT`], retries included; a handler stops at its first failing call, which
//! leaves more than half the Lambda timeout for the work before it and for the response.

use std::time::Duration;

use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::Builder;

/// Attempts per call, the first included: two retries ride out a brief throttling burst or a
/// dropped connection. Attempts that fail fast (throttling, 5xx, a refused or dropped
/// connection) all fit in [`OPERATION_TIMEOUT`]; of slow ones, the third is cut short by it.
pub const MAX_ATTEMPTS: u32 = 3;

/// Backoff before the first retry; doubled for the next one, with full jitter (so the waits
/// are at most 100 ms and 200 ms). DynamoDB answers in milliseconds and its throttling is
/// per-partition and short-lived; the SDK's 1 s default would spend a tenth of the Lambda
/// timeout on a single wait.
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(100);

/// Cap of any one backoff. With [`MAX_ATTEMPTS`] it is never reached; it bounds the wait should
/// the attempts be raised.
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Time to establish a connection (TCP and TLS) to the regional endpoint; from inside the
/// region that takes milliseconds, so a second means the endpoint is unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Time for one attempt, from sending the request to having the whole response. DynamoDB's
/// latency is single-digit milliseconds and the items here are small: an attempt still
/// unanswered after 1.5 s is stuck, and a retry on a fresh connection is the better bet.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(1_500);

/// Time for a whole call, all attempts and backoffs included: the most one failing store call
/// can cost a request. Three slow attempts (3 × 1.5 s plus backoffs) would take longer; the
/// third is cut short here. At 4 s, a request that meets a failing store answers its 503 in
/// about 4 s after its previous successful calls, well inside the 10 s Lambda timeout.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(4);

/// Standard retry mode (retries throttling, 5xx, timeouts and I/O errors; not conditional
/// check failures or validation errors) with [`MAX_ATTEMPTS`] and a short backoff.
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(MAX_ATTEMPTS)
        .with_initial_backoff(INITIAL_BACKOFF)
        .with_max_backoff(MAX_BACKOFF)
}

/// [`CONNECT_TIMEOUT`], [`ATTEMPT_TIMEOUT`] and [`OPERATION_TIMEOUT`].
pub fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// Applies the retry and timeout settings to a client configuration: the functions' client and
/// the tests' clients are built through this, so the tests exercise the production settings.
/// (The SDK's default Tokio sleep, which timeouts and backoffs need, comes with the builder.)
pub fn configure_client(builder: Builder) -> Builder {
    builder
        .retry_config(retry_config())
        .timeout_config(timeout_config())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Lambda timeout every function has (`Globals.Function.Timeout` in `template.yaml`).
    fn lambda_timeout() -> Duration {
        let template: serde_yaml::Value =
            serde_yaml::from_str(include_str!("../../../template.yaml")).expect("template.yaml");
        let secs = template["Globals"]["Function"]["Timeout"]
            .as_u64()
            .expect("Globals.Function.Timeout");
        Duration::from_secs(secs)
    }

    #[test]
    fn a_failing_store_call_ends_well_inside_the_lambda_timeout() {
        // One failed call after others have succeeded must still leave time to answer.
        assert!(OPERATION_TIMEOUT * 2 <= lambda_timeout());
        assert!(ATTEMPT_TIMEOUT < OPERATION_TIMEOUT);
        assert!(CONNECT_TIMEOUT <= ATTEMPT_TIMEOUT);
        // Every retry is possible: the worst backoffs fit between the attempts.
        let backoffs: Duration = (0..MAX_ATTEMPTS - 1)
            .map(|i| (INITIAL_BACKOFF * 2u32.pow(i)).min(MAX_BACKOFF))
            .sum();
        assert!(backoffs < OPERATION_TIMEOUT - ATTEMPT_TIMEOUT * 2);
    }

    #[test]
    fn the_builder_gets_both_configs() {
        let config = configure_client(aws_sdk_dynamodb::Config::builder()).build();
        assert_eq!(config.retry_config(), Some(&retry_config()));
        assert_eq!(config.timeout_config(), Some(&timeout_config()));
        assert_eq!(retry_config().max_attempts(), 3);
    }
}
