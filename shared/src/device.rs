//! Device fingerprints (`x-device-fingerprint`) reduced to a stable hash. The raw fingerprint
//! is never stored; the hash is bound to the tenant so it cannot be correlated across tenants.
//!
//! - A JSON header is canonicalised (object keys sorted, no whitespace) before hashing, so the
//!   same fingerprint with its keys in another order is the same device.
//! - A header that is not JSON (or not UTF-8) does not fail the login: it is hashed as opaque
//!   text, so a client that always sends the same string is still one device.
//! - Without the header, or with one over [`MAX_FINGERPRINT_BYTES`], the user agent stands in.

use lambda_http::Request;
use serde_json::Value;

use crate::crypto::sha256_hex;
use crate::ids::TenantId;

pub const FINGERPRINT_HEADER: &str = "x-device-fingerprint";
/// Longer headers are ignored rather than hashed.
pub const MAX_FINGERPRINT_BYTES: usize = 8 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceFingerprint {
    pub hash: String,
    /// `header`, `opaque_header` or `user_agent`.
    pub source: &'static str,
}

pub fn fingerprint(
    req: &Request,
    tenant: &TenantId,
    user_agent: Option<&str>,
) -> DeviceFingerprint {
    let header = req
        .headers()
        .get(FINGERPRINT_HEADER)
        .map(|v| v.as_bytes())
        .filter(|v| !v.iter().all(u8::is_ascii_whitespace) && v.len() <= MAX_FINGERPRINT_BYTES);
    let (source, material) = match header {
        Some(raw) => match serde_json::from_slice::<Value>(raw) {
            Ok(json) => ("header", format!("json:{}", canonical(&json))),
            Err(_) => (
                "opaque_header",
                format!("text:{}", String::from_utf8_lossy(raw).trim()),
            ),
        },
        None => (
            "user_agent",
            format!("ua:{}", user_agent.unwrap_or_default()),
        ),
    };
    DeviceFingerprint {
        hash: sha256_hex(format!("{tenant}\n{material}").as_bytes()),
        source,
    }
}

/// JSON with object keys sorted at every level and no insignificant whitespace.
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let inner: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), canonical(v)))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", inner.join(","))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(header: Option<&[u8]>) -> Request {
        let mut builder = lambda_http::http::Request::builder();
        if let Some(value) = header {
            builder = builder.header(FINGERPRINT_HEADER, value);
        }
        builder.body(lambda_http::Body::Empty).unwrap()
    }

    #[test]
    fn key_order_and_spacing_do_not_change_the_device() {
        let t = TenantId::new_random();
        let a = fingerprint(
            &request(Some(
                br#"{"screen":"1920x1080","tz":"UTC","n":{"b":1,"a":2}}"#,
            )),
            &t,
            None,
        );
        let b = fingerprint(
            &request(Some(
                br#"{ "tz": "UTC", "n": {"a":2, "b":1}, "screen": "1920x1080" }"#,
            )),
            &t,
            None,
        );
        assert_eq!(a, b);
        assert_eq!(a.source, "header");
        let other = fingerprint(&request(Some(br#"{"screen":"1280x720"}"#)), &t, None);
        assert_ne!(a.hash, other.hash);
    }

    #[test]
    fn tenants_get_different_hashes_for_one_device() {
        let header = Some(&br#"{"screen":"1920x1080"}"#[..]);
        let a = fingerprint(&request(header), &TenantId::new_random(), None);
        let b = fingerprint(&request(header), &TenantId::new_random(), None);
        assert_ne!(a.hash, b.hash);
    }

    #[test]
    fn non_json_is_opaque_and_absent_falls_back_to_the_user_agent() {
        let t = TenantId::new_random();
        let opaque = fingerprint(&request(Some(b"screen=1920x1080")), &t, None);
        assert_eq!(opaque.source, "opaque_header");
        assert_eq!(
            opaque,
            fingerprint(&request(Some(b"screen=1920x1080 ")), &t, None)
        );
        let ua = fingerprint(&request(None), &t, Some("Firefox"));
        assert_eq!(ua.source, "user_agent");
        assert_ne!(ua, fingerprint(&request(None), &t, Some("Chrome")));
        let huge = vec![b'a'; MAX_FINGERPRINT_BYTES + 1];
        assert_eq!(fingerprint(&request(Some(&huge)), &t, Some("Firefox")), ua);
    }
}
