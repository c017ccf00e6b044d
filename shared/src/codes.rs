//! Backup codes: single-use fallback codes, generated from the OS CSPRNG and stored only as
//! keyed hashes (HMAC-SHA256 with a secret kept outside the database, OWASP ASVS 6.5.2).

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use subtle::ConstantTimeEq;

use crate::config::ConfigError;
use crate::crypto::hex;
use crate::ids::{TenantId, UserId};

/// Codes handed out on a user's first MFA enrollment.
pub const BACKUP_CODE_COUNT: usize = 10;
/// Characters per code: 12 symbols of 5 bits each is 60 bits of entropy.
const CODE_SYMBOLS: usize = 12;
/// Crockford's base32: no I, L, O or U, so codes survive being read aloud or retyped.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const MIN_PEPPER_BYTES: usize = 32;
/// Wrong backup codes a user may enter before redemption is locked.
pub const MAX_FAILED_ATTEMPTS: u32 = 5;
/// How long a lockout lasts.
pub const LOCKOUT_SECS: i64 = 15 * 60;

/// Holds the HMAC key; built once at cold start.
pub struct BackupCodeHasher {
    key: hmac::Key,
}

impl std::fmt::Debug for BackupCodeHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BackupCodeHasher(..)")
    }
}

impl BackupCodeHasher {
    pub fn new(pepper: &[u8]) -> Result<Self, ConfigError> {
        if pepper.len() < MIN_PEPPER_BYTES {
            return Err(ConfigError::Invalid {
                name: crate::config::BACKUP_CODE_PEPPER_SECRET_ID,
                reason: format!("must be at least {MIN_PEPPER_BYTES} bytes"),
            });
        }
        Ok(Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, pepper),
        })
    }

    /// The pepper from the Secrets Manager secret `BACKUP_CODE_PEPPER_SECRET_ID` names.
    pub async fn from_env(sdk_config: &aws_config::SdkConfig) -> Result<Self, ConfigError> {
        let client = crate::secrets::secrets_client(sdk_config);
        let pepper =
            crate::secrets::secret_named_by(&client, crate::config::BACKUP_CODE_PEPPER_SECRET_ID)
                .await?;
        Self::new(&pepper)
    }

    /// The stored form: bound to the tenant and user, so a hash is worthless for anyone else.
    pub fn hash(&self, tenant: &TenantId, user: &UserId, code: &str) -> String {
        let message = format!("{tenant}#{user}#{}", normalise(code));
        hex(hmac::sign(&self.key, message.as_bytes()).as_ref())
    }

    /// The slot whose stored hash matches `code`, comparing every slot in constant time.
    pub fn find_slot<'a>(
        &self,
        tenant: &TenantId,
        user: &UserId,
        code: &str,
        stored: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Option<String> {
        let candidate = self.hash(tenant, user, code);
        let mut found = None;
        for (slot, hash) in stored {
            if bool::from(candidate.as_bytes().ct_eq(hash.as_bytes())) {
                found = Some(slot.clone());
            }
        }
        found
    }
}

/// Fresh codes, formatted `XXXX-XXXX-XXXX`.
pub fn generate(count: usize) -> Result<Vec<String>, aws_lc_rs::error::Unspecified> {
    let rng = SystemRandom::new();
    (0..count)
        .map(|_| {
            let mut bytes = [0u8; CODE_SYMBOLS];
            rng.fill(&mut bytes)?;
            // 256 is a multiple of 32, so masking keeps every symbol equally likely.
            let symbols: Vec<char> = bytes
                .iter()
                .map(|b| char::from(ALPHABET[usize::from(b & 31)]))
                .collect();
            Ok(symbols
                .chunks(4)
                .map(|c| c.iter().collect::<String>())
                .collect::<Vec<_>>()
                .join("-"))
        })
        .collect()
}

/// Upper-cased, separators dropped, and Crockford's look-alikes folded (O→0, I/L→1).
pub fn normalise(code: &str) -> String {
    code.chars()
        .filter(|c| !matches!(c, '-' | ' ' | '\t'))
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            other => other,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashSet};

    fn hasher() -> BackupCodeHasher {
        BackupCodeHasher::new(&[7u8; 32]).unwrap()
    }

    #[test]
    fn codes_have_sixty_bits_and_the_expected_shape() {
        let codes = generate(BACKUP_CODE_COUNT).unwrap();
        assert_eq!(codes.len(), 10);
        assert_eq!(codes.iter().collect::<HashSet<_>>().len(), 10);
        for code in &codes {
            assert_eq!(code.len(), 14);
            let symbols = normalise(code);
            assert_eq!(symbols.len(), CODE_SYMBOLS);
            assert!(symbols.bytes().all(|b| ALPHABET.contains(&b)));
        }
        const { assert!(CODE_SYMBOLS * 5 >= 50) };
    }

    #[test]
    fn hashes_are_keyed_and_bound_to_the_user() {
        let (t, u, other) = (
            TenantId::new_random(),
            UserId::new_random(),
            UserId::new_random(),
        );
        let h = hasher();
        let hash = h.hash(&t, &u, "ABCD-EFGH-JKMN");
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains("ABCD"));
        assert_eq!(hash, h.hash(&t, &u, "abcd efgh jkmn"));
        assert_ne!(hash, h.hash(&t, &other, "ABCD-EFGH-JKMN"));
        let other_key = BackupCodeHasher::new(&[8u8; 32]).unwrap();
        assert_ne!(hash, other_key.hash(&t, &u, "ABCD-EFGH-JKMN"));
    }

    #[test]
    fn find_slot_matches_only_the_right_code() {
        let (t, u) = (TenantId::new_random(), UserId::new_random());
        let h = hasher();
        let stored: BTreeMap<String, String> = [("0", "AAAA-BBBB-CCCC"), ("1", "DDDD-EEEE-FFFF")]
            .iter()
            .map(|(slot, code)| (slot.to_string(), h.hash(&t, &u, code)))
            .collect();
        assert_eq!(
            h.find_slot(&t, &u, "dddd-eeee-ffff", &stored),
            Some("1".into())
        );
        assert_eq!(h.find_slot(&t, &u, "DDDD-EEEE-FFFE", &stored), None);
    }

    #[test]
    fn short_peppers_are_refused() {
        assert!(BackupCodeHasher::new(b"short").is_err());
    }
}
