//! Identifier newtypes, so a tenant id can never be passed where a user id is expected.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            pub fn new_random() -> Self {
                Self(Uuid::new_v4())
            }

            pub fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(value: Uuid) -> Self {
                Self(value)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            /// Accepts any case; ids are always written back lower-case.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s.trim()).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }
    };
}

uuid_id!(
    /// A tenant: one relying party configuration and its isolated users.
    TenantId
);
uuid_id!(
    /// A user inside one tenant (also the WebAuthn user handle).
    UserId
);
uuid_id!(
    /// A passwordless login session: what a refresh token belongs to and logout revokes.
    SessionId
);
uuid_id!(
    /// A single-use challenge handed to a client (MFA challenges, enrollment grants).
    ChallengeId
);

/// A WebAuthn credential id: opaque bytes chosen by the authenticator, shown as base64url.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CredentialId(Vec<u8>);

impl CredentialId {
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn to_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.0)
    }

    pub fn from_base64url(s: &str) -> Result<Self, base64::DecodeError> {
        URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).map(Self)
    }
}

impl fmt::Display for CredentialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64url())
    }
}

impl fmt::Debug for CredentialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CredentialId({})", self.to_base64url())
    }
}

impl Serialize for CredentialId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_base64url())
    }
}

impl<'de> Deserialize<'de> for CredentialId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::from_base64url(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_ids_parse_any_case_and_print_lower_case() {
        let id: TenantId = "2489E9AD-2EE2-8E00-8EC9-32D5F69181C0".parse().unwrap();
        assert_eq!(id.to_string(), "2489e9ad-2ee2-8e00-8ec9-32d5f69181c0");
        assert!("not-a-uuid".parse::<UserId>().is_err());
    }

    #[test]
    fn credential_ids_round_trip_through_base64url() {
        let id = CredentialId::from_bytes(vec![0xfb, 0xff, 0x01]);
        assert_eq!(id.to_base64url(), "-_8B");
        assert_eq!(CredentialId::from_base64url("-_8B").unwrap(), id);
        assert_eq!(CredentialId::from_base64url("-_8B==").unwrap(), id);
        assert!(CredentialId::from_base64url("*").is_err());
    }
}
