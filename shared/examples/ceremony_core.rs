//! The CPU-bound core of a ceremony, one operation at a time, for instruction counts under
//! `valgrind --tool=callgrind` (bench/callgrind.sh): `ceremony_core <operation> <repetitions>`.
//!
//! Every run does the same setup (a tenant, a user, a passkey registered with webauthn-rs from a
//! `SoftPasskey`, MFA options, one assertion, an ES256 signing key and one token), then runs the
//! operation `repetitions` times. bench/callgrind.sh runs each operation with 1 and with 1 + N
//! repetitions and divides the difference of the totals by N, so the setup, the process start
//! and first-use costs cancel out and the binary needs no symbols (the release profile strips
//! them). Not a test and not a criterion bench: `shared/benches/hot_paths.rs` times the same
//! work; this counts instructions, which a busy machine does not change.

use std::hint::black_box;

use shared::config::TokenSettings;
use shared::ids::{TenantId, UserId};
use shared::jwt::{Claims, TokenVerifier};
use shared::keys::TokenSigner;
use shared::mfa::MfaCeremony;
use shared::store::UserRecord;
use shared::tenant::{MethodType, Tenant};
use shared::webauthn::{
    credential_record, finish_authentication, finish_registration, start_authentication,
    start_registration, NewCredential,
};
use url::Url;
use webauthn_authenticator_rs::prelude::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs_proto::{CreationChallengeResponse, RequestChallengeResponse};

const ORIGIN: &str = "http://localhost:3000";

/// The operations, as named on the command line, with what they stand for.
const OPERATIONS: &[(&str, &str)] = &[
    (
        "register-options",
        "start_registration: creation options + state (one credential excluded)",
    ),
    (
        "mfa-options",
        "start_authentication: request options + state (one credential)",
    ),
    (
        "mfa-state",
        "MFA state (webauthn state + credentials): serialise + parse JSON",
    ),
    (
        "verify-assertion",
        "finish_authentication: verify an ES256 assertion (webauthn-rs)",
    ),
    (
        "token-sign",
        "access token: sign ES256 (local key; the functions sign in KMS)",
    ),
    (
        "token-verify",
        "access token: verify ES256 (algorithm pinned, claims checked)",
    ),
];

fn main() {
    let mut args = std::env::args().skip(1);
    let operation = args.next().unwrap_or_default();
    if operation == "list" {
        for (name, what) in OPERATIONS {
            println!("{name}\t{what}");
        }
        return;
    }
    if !OPERATIONS.iter().any(|(name, _)| *name == operation) {
        eprintln!("usage: ceremony_core list | ceremony_core <operation> <repetitions>");
        std::process::exit(2);
    }
    let repetitions: u32 = args.next().and_then(|n| n.parse().ok()).unwrap_or(1);

    // Setup, identical for every operation.
    let tenant = Tenant::new("Bench", "localhost", vec![ORIGIN.into()], 0);
    let user = UserRecord {
        tenant_id: tenant.tenant_id,
        user_id: UserId::new_random(),
        email: "bench@example.com".into(),
        display_name: "Bench".into(),
        created_at: 0,
        deleted_at: None,
        groups: Vec::new(),
    };
    let origin = Url::parse(ORIGIN).unwrap();
    let mut authenticator = SoftPasskey::new(true);
    let started = start_registration(&tenant, &user, MethodType::WebauthnPasskey, &[]).unwrap();
    let mut options = started.options;
    // SoftPasskey refuses the legacy requireResidentKey flag (see the integration harness).
    if let Some(selection) = options.authenticator_selection.as_mut() {
        selection.require_resident_key = false;
    }
    let attestation = authenticator
        .do_registration(
            origin.clone(),
            CreationChallengeResponse {
                public_key: options,
            },
        )
        .unwrap();
    let credential = finish_registration(&tenant, &started.state, &attestation, false)
        .unwrap()
        .unwrap();
    let record = credential_record(
        NewCredential {
            tenant: &tenant,
            user: &user,
            method: MethodType::WebauthnPasskey,
            device_name: "bench".into(),
            now: 0,
        },
        &credential,
        &attestation.response.attestation_object,
    )
    .unwrap();
    let records = std::slice::from_ref(&record);
    let mfa = start_authentication(&tenant, records, false).unwrap();
    let assertion = authenticator
        .do_authentication(
            origin,
            RequestChallengeResponse {
                public_key: mfa.options,
                mediation: None,
            },
        )
        .unwrap();
    let ceremony = MfaCeremony {
        auth: mfa.state,
        credentials: vec![record.clone()],
    };
    let key = TokenSigner::from_pem(&TokenSigner::generate_pem().unwrap()).unwrap();
    let settings = TokenSettings {
        issuer: "https://auth.example.com".into(),
        audience: "bench".into(),
    };
    let verifier = TokenVerifier::new(&key.jwks(), &settings).unwrap();
    let claims = Claims::new(
        &settings,
        TenantId::new_random(),
        UserId::new_random(),
        1_800_000_000,
        900,
    );
    let token = futures::executor::block_on(key.sign(&claims)).unwrap();

    for _ in 0..repetitions {
        match operation.as_str() {
            "register-options" => {
                black_box(
                    start_registration(
                        black_box(&tenant),
                        &user,
                        MethodType::WebauthnFido,
                        records,
                    )
                    .unwrap(),
                );
            }
            "mfa-options" => {
                black_box(start_authentication(black_box(&tenant), records, false).unwrap());
            }
            "mfa-state" => {
                let text = serde_json::to_string(black_box(&ceremony)).unwrap();
                black_box(serde_json::from_str::<MfaCeremony>(&text).unwrap());
            }
            "verify-assertion" => {
                black_box(
                    finish_authentication(
                        &tenant,
                        &ceremony.auth,
                        black_box(&assertion),
                        &ceremony.credentials,
                    )
                    .unwrap()
                    .unwrap(),
                );
            }
            "token-sign" => {
                black_box(futures::executor::block_on(key.sign(black_box(&claims))).unwrap());
            }
            "token-verify" => {
                black_box(
                    verifier
                        .verify(black_box(&token), &settings, 1_800_000_100)
                        .unwrap(),
                );
            }
            _ => unreachable!(),
        }
    }
}
