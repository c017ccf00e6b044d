//! Which authenticator model made a credential, from the AAGUID in its attested credential
//! data: a display name and, where the data carries one, an icon as a `data:` URI.
//!
//! For account screens only. Unless attestation was verified the AAGUID is whatever the
//! authenticator chose to send, so nothing security-relevant may depend on it.
//!
//! The list, `data/aaguids.json`, is compiled into the binary and parsed once, on the first
//! lookup. Its source, licence and version are in `data/SOURCE.md`; `scripts/update-aaguids.py`
//! refreshes it.

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `{"<aaguid>": {"name": "...", "icon"?: "data:image/...;base64,..."}, ...}`.
const DATA: &str = include_str!("../data/aaguids.json");

/// The largest icon accepted, as a whole data URI, in bytes. The refresh script drops larger
/// ones; keep the two in step.
pub const MAX_ICON_BYTES: usize = 8 * 1024;

/// The data URI prefixes an icon may have.
const ICON_PREFIXES: [&str; 2] = ["data:image/svg+xml;base64,", "data:image/png;base64,"];

/// An authenticator model as an account screen shows it. Serialises as
/// `{"name": "YubiKey 5 Series", "icon": "data:image/svg+xml;base64,…"}`, `icon` being `null`
/// when the data has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Authenticator {
    pub name: &'static str,
    pub icon: Option<&'static str>,
}

/// The authenticator model with this AAGUID, if the list knows it. The nil AAGUID (sent by
/// authenticators that do not reveal their model, and by U2F keys) is never known.
pub fn lookup(aaguid: &Uuid) -> Option<Authenticator> {
    if aaguid.is_nil() {
        return None;
    }
    table().get(aaguid).map(|entry| Authenticator {
        name: &entry.name,
        icon: entry.icon.as_deref(),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: String,
    #[serde(default)]
    icon: Option<String>,
}

fn table() -> &'static HashMap<Uuid, Entry> {
    static TABLE: OnceLock<HashMap<Uuid, Entry>> = OnceLock::new();
    TABLE.get_or_init(|| match parse(DATA) {
        Ok(table) => table,
        Err(e) => {
            // The unit tests parse these very bytes, so a tested build never gets here. Should
            // one, credentials show no authenticator rather than the caller failing.
            if cfg!(debug_assertions) {
                panic!("authenticators/data/aaguids.json: {e}");
            }
            HashMap::new()
        }
    })
}

/// Parses and checks the list: canonical, unique, non-nil AAGUIDs; trimmed, non-empty names;
/// well-formed icons of at most [`MAX_ICON_BYTES`].
fn parse(json: &str) -> Result<HashMap<Uuid, Entry>, String> {
    let Pairs(pairs) = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let mut table = HashMap::with_capacity(pairs.len());
    for (key, entry) in pairs {
        let aaguid = Uuid::parse_str(&key).map_err(|e| format!("{key:?}: {e}"))?;
        if aaguid.hyphenated().to_string() != key {
            return Err(format!("{key:?}: not a lower-case hyphenated AAGUID"));
        }
        if aaguid.is_nil() {
            return Err("the nil AAGUID identifies no authenticator".into());
        }
        check_name(&entry.name).map_err(|e| format!("{key}: {e}"))?;
        if let Some(icon) = &entry.icon {
            check_icon(icon).map_err(|e| format!("{key}: {e}"))?;
        }
        if table.insert(aaguid, entry).is_some() {
            return Err(format!("{key}: listed twice"));
        }
    }
    Ok(table)
}

fn check_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("empty name".into());
    }
    if name.trim() != name {
        return Err(format!("name {name:?} is not trimmed"));
    }
    if name.chars().any(char::is_control) {
        return Err(format!("name {name:?} has a control character"));
    }
    Ok(())
}

fn check_icon(icon: &str) -> Result<(), String> {
    if icon.len() > MAX_ICON_BYTES {
        return Err(format!(
            "icon of {} bytes, more than {MAX_ICON_BYTES}",
            icon.len()
        ));
    }
    let payload = ICON_PREFIXES
        .iter()
        .find_map(|prefix| icon.strip_prefix(prefix))
        .ok_or("icon is not a base64 SVG or PNG data URI")?;
    let data = payload.trim_end_matches('=');
    let well_formed = !payload.is_empty()
        && payload.len() % 4 == 0
        && payload.len() - data.len() <= 2
        && data
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
    if !well_formed {
        return Err("icon is not valid base64".into());
    }
    Ok(())
}

/// A JSON object read as its key/value pairs in order, so that a key listed twice is seen
/// (a map would keep the last silently).
struct Pairs(Vec<(String, Entry)>);

impl<'de> Deserialize<'de> for Pairs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PairsVisitor;
        impl<'de> Visitor<'de> for PairsVisitor {
            type Value = Pairs;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object mapping AAGUIDs to {name, icon}")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Pairs, A::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(pair) = map.next_entry()? {
                    pairs.push(pair);
                }
                Ok(Pairs(pairs))
            }
        }
        deserializer.deserialize_map(PairsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use serde_json::json;

    const YUBIKEY_5: &str = "cb69481e-8ff7-4039-93ec-0a2729a154a8";
    const GOOGLE_PASSWORD_MANAGER: &str = "ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4";
    const ICLOUD_KEYCHAIN: &str = "fbfc3007-154e-4ecc-8c0b-6e020557d7bd";
    /// webauthn-authenticator-rs's `SoftToken`, which the integration tests enroll.
    const SOFT_TOKEN: &str = "0fb9bcbc-a0d4-4042-bbb0-559bc1631e28";
    /// A 1×1 SVG, base64.
    const TINY_SVG: &str =
        "data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciLz4=";

    fn id(s: &str) -> Uuid {
        Uuid::parse_str(s).unwrap()
    }

    #[test]
    fn the_embedded_list_parses_with_unique_aaguids() {
        let parsed = parse(DATA).unwrap();
        // The upstream list announces it will be emptied when retired: a refresh that lost
        // most of it must not pass unnoticed.
        assert!(parsed.len() > 100, "only {} entries", parsed.len());
        // Every line of the file is one entry, so a duplicate key would also show here.
        let lines = DATA.lines().filter(|l| l.trim_start().starts_with('"'));
        assert_eq!(lines.count(), parsed.len());
        assert_eq!(table().len(), parsed.len());
    }

    #[test]
    fn well_known_authenticators_have_their_names() {
        for (aaguid, name) in [
            (YUBIKEY_5, "YubiKey 5 Series"),
            (GOOGLE_PASSWORD_MANAGER, "Google Password Manager"),
            // iCloud Keychain's AAGUID, listed under the app's current name.
            (ICLOUD_KEYCHAIN, "Apple Passwords"),
        ] {
            let found = lookup(&id(aaguid)).unwrap_or_else(|| panic!("{aaguid} unknown"));
            assert_eq!(found.name, name);
            if let Some(icon) = found.icon {
                assert!(icon.starts_with("data:image/"), "{icon}");
            }
        }
    }

    #[test]
    fn the_nil_aaguid_unknown_ones_and_soft_authenticators_are_not_known() {
        assert_eq!(lookup(&Uuid::nil()), None);
        assert_eq!(lookup(&id("6f1d1a2b-0000-4000-8000-000000000000")), None);
        assert_eq!(lookup(&id(SOFT_TOKEN)), None);
        assert_eq!(lookup(&Uuid::max()), None);
    }

    #[test]
    fn every_icon_is_a_decodable_data_uri_under_the_cap() {
        for (aaguid, entry) in table() {
            let Some(icon) = &entry.icon else { continue };
            check_icon(icon).unwrap_or_else(|e| panic!("{aaguid}: {e}"));
            let (mime, payload) = icon
                .strip_prefix("data:")
                .and_then(|rest| rest.split_once(";base64,"))
                .unwrap();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(payload)
                .unwrap_or_else(|e| panic!("{aaguid}: {e}"));
            match mime {
                "image/png" => assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{aaguid}"),
                "image/svg+xml" => {
                    let text = String::from_utf8_lossy(&bytes);
                    assert!(text.contains("<svg"), "{aaguid}: no <svg> element");
                }
                other => panic!("{aaguid}: icon of type {other}"),
            }
        }
    }

    #[test]
    fn it_serialises_as_name_and_icon() {
        let known = lookup(&id(YUBIKEY_5)).unwrap();
        let value = serde_json::to_value(known).unwrap();
        assert_eq!(value["name"], "YubiKey 5 Series");
        let mut keys = value.as_object().unwrap().keys().collect::<Vec<_>>();
        keys.sort();
        assert_eq!(keys, ["icon", "name"]);
        let with_icon = Authenticator {
            name: "Key",
            icon: Some(TINY_SVG),
        };
        assert_eq!(
            serde_json::to_value(with_icon).unwrap(),
            json!({ "name": "Key", "icon": TINY_SVG })
        );
        let without = Authenticator {
            name: "Key",
            icon: None,
        };
        assert_eq!(
            serde_json::to_value(without).unwrap(),
            json!({ "name": "Key", "icon": null })
        );
    }

    #[test]
    fn entries_with_icons_parse() {
        let json = json!({ YUBIKEY_5: { "name": "Key", "icon": TINY_SVG } }).to_string();
        let table = parse(&json).unwrap();
        assert_eq!(table[&id(YUBIKEY_5)].icon.as_deref(), Some(TINY_SVG));
        let png = "data:image/png;base64,iVBORw0KGgo=";
        let json = json!({ YUBIKEY_5: { "name": "Key", "icon": png } }).to_string();
        assert!(parse(&json).is_ok());
    }

    #[test]
    fn malformed_lists_are_refused() {
        let entry = json!({ "name": "Key" });
        let refused = |json: String, why: &str| {
            let err = parse(&json).expect_err(why);
            assert!(err.contains(why), "{why}: {err}");
        };
        refused(
            format!(r#"{{"{YUBIKEY_5}": {entry}, "{YUBIKEY_5}": {entry}}}"#),
            "listed twice",
        );
        refused(
            json!({ (YUBIKEY_5.to_uppercase()): entry }).to_string(),
            "lower-case",
        );
        refused(
            json!({ (YUBIKEY_5.replace('-', "")): entry }).to_string(),
            "hyphenated",
        );
        refused(
            json!({ "not-an-aaguid": entry }).to_string(),
            "not-an-aaguid",
        );
        refused(
            json!({ (Uuid::nil().to_string()): entry }).to_string(),
            "nil AAGUID",
        );
        refused(json!({ YUBIKEY_5: { "name": "" } }).to_string(), "empty");
        refused(
            json!({ YUBIKEY_5: { "name": " Key" } }).to_string(),
            "not trimmed",
        );
        refused(
            json!({ YUBIKEY_5: { "name": "K\u{7}ey" } }).to_string(),
            "control",
        );
        refused(
            json!({ YUBIKEY_5: { "name": "Key", "icon_dark": TINY_SVG } }).to_string(),
            "unknown field",
        );
        refused(json!([entry]).to_string(), "an object");
        for (icon, why) in [
            ("https://example.com/key.svg", "data URI"),
            ("data:image/gif;base64,R0lGODlh", "data URI"),
            ("data:image/svg+xml,<svg/>", "data URI"),
            ("data:image/svg+xml;base64,", "base64"),
            ("data:image/svg+xml;base64,PHN2Zz4", "base64"),
            ("data:image/svg+xml;base64,PH*2Zz4=", "base64"),
            ("data:image/svg+xml;base64,P===", "base64"),
        ] {
            refused(
                json!({ YUBIKEY_5: { "name": "Key", "icon": icon } }).to_string(),
                why,
            );
        }
        let huge = format!(
            "data:image/png;base64,{}",
            "A".repeat(MAX_ICON_BYTES - "data:image/png;base64,".len() + 4)
        );
        refused(
            json!({ YUBIKEY_5: { "name": "Key", "icon": huge } }).to_string(),
            "more than",
        );
        let at_cap = format!(
            "data:image/png;base64,{}",
            "A".repeat((MAX_ICON_BYTES - "data:image/png;base64,".len()) / 4 * 4)
        );
        assert!(at_cap.len() <= MAX_ICON_BYTES);
        assert!(
            parse(&json!({ YUBIKEY_5: { "name": "Key", "icon": at_cap } }).to_string()).is_ok()
        );
    }
}
