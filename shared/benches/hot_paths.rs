//! CPU cost of the per-request work that does not wait on DynamoDB: assertion verification,
//! token signing and verification, refresh-token minting, device fingerprints. Run with
//! `cargo bench -p shared`; the README lists the numbers of a reference machine.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use shared::config::TokenSettings;
use shared::device::fingerprint;
use shared::ids::{SessionId, UserId};
use shared::jwt::{Claims, TokenVerifier};
use shared::keys::TokenSigner;
use shared::session::{hash_refresh_token, new_refresh_token};
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

fn passkey_assertion(c: &mut Criterion) {
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

    c.bench_function("passwordless begin: request options + state", |b| {
        b.iter(|| start_authentication(&tenant, std::slice::from_ref(&record), true).unwrap())
    });
    let login = start_authentication(&tenant, std::slice::from_ref(&record), true).unwrap();
    let assertion = authenticator
        .do_authentication(
            origin,
            RequestChallengeResponse {
                public_key: login.options,
                mediation: None,
            },
        )
        .unwrap();
    // webauthn-rs does not consume state, so one assertion can be verified repeatedly.
    c.bench_function("passwordless complete: verify assertion (ES256)", |b| {
        b.iter(|| {
            let registered = std::slice::from_ref(&record);
            finish_authentication(&tenant, &login.state, black_box(&assertion), registered)
                .unwrap()
                .unwrap()
        })
    });
}

fn tokens(c: &mut Criterion) {
    let key = TokenSigner::from_pem(&TokenSigner::generate_pem().unwrap()).unwrap();
    let settings = TokenSettings {
        issuer: "https://auth.example.com".into(),
        audience: "bench".into(),
    };
    let verifier = TokenVerifier::new(&key.jwks(), &settings).unwrap();
    let claims = Claims::new(
        &settings,
        shared::ids::TenantId::new_random(),
        UserId::new_random(),
        1_800_000_000,
        900,
    );
    c.bench_function("access token: sign (ES256)", |b| {
        b.iter(|| futures::executor::block_on(key.sign(black_box(&claims))).unwrap())
    });
    let token = futures::executor::block_on(key.sign(&claims)).unwrap();
    c.bench_function("access token: verify (ES256, pinned)", |b| {
        b.iter(|| {
            verifier
                .verify(black_box(&token), &settings, 1_800_000_100)
                .unwrap()
        })
    });
    let session = SessionId::new_random();
    c.bench_function("refresh token: mint 256-bit secret + SHA-256", |b| {
        b.iter(|| new_refresh_token(black_box(&session)).unwrap())
    });
    let minted = new_refresh_token(&session).unwrap();
    c.bench_function("refresh token: hash for lookup", |b| {
        b.iter(|| hash_refresh_token(black_box(&minted.token)))
    });
}

fn device(c: &mut Criterion) {
    let tenant = shared::ids::TenantId::new_random();
    let req = lambda_http::http::Request::builder()
        .header(
            "x-device-fingerprint",
            r#"{"screen":"1920x1080","timezone":"Europe/Berlin","platform":"MacIntel","languages":["de-DE","en"],"cores":8}"#,
        )
        .body(lambda_http::Body::Empty)
        .unwrap();
    c.bench_function("device fingerprint: canonical JSON + SHA-256", |b| {
        b.iter(|| fingerprint(black_box(&req), &tenant, None))
    });
}

criterion_group!(benches, passkey_assertion, tokens, device);
criterion_main!(benches);
