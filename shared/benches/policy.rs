//! CPU cost of one tenant-policy decision (issue 14's budget: at most 50 µs), with the default
//! set already parsed (the per-container cache), and of the first parse of a tenant's set.
//! Run with `cargo bench -p shared --bench policy`; the README lists the numbers.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use shared::ids::UserId;
use shared::policy::{decide, default_policies, AuthenticatorFacts, Facts, Question, Subject};
use shared::tenant::{MethodType, Tenant};

fn decisions(c: &mut Criterion) {
    let mut tenant = Tenant::new("Bench", "localhost", vec!["http://localhost".into()], 0);
    tenant.min_authenticators = 2;
    tenant.required_methods = vec![MethodType::WebauthnFido];
    let subject = Subject {
        tenant: tenant.tenant_id,
        user: UserId::new_random(),
        authenticators: vec![MethodType::WebauthnPasskey, MethodType::WebauthnFido],
        has_backup_codes: Some(true),
        groups: None,
    };
    let facts = Facts {
        uv: Some(true),
        auth_age_secs: Some(30),
        source_ip: "192.0.2.1".parse().ok(),
        ..Facts::default()
    };
    let key = AuthenticatorFacts {
        aaguid: Some(uuid::Uuid::from_u128(7)),
        attestation_format: Some("packed".into()),
        backup_eligible: Some(false),
        user_verified: Some(true),
        ..AuthenticatorFacts::planned(MethodType::WebauthnFido)
    };
    // Parsed once, as on a container's first decision for the tenant.
    decide(&tenant, &subject, &Question::FullAccess, &facts).unwrap();
    c.bench_function("policy decision: full_access, default set", |b| {
        b.iter(|| decide(&tenant, &subject, black_box(&Question::FullAccess), &facts).unwrap())
    });
    c.bench_function("policy decision: register, default set", |b| {
        b.iter(|| {
            decide(
                &tenant,
                &subject,
                black_box(&Question::Register(&key)),
                &facts,
            )
            .unwrap()
        })
    });
    // A tenant's own set that reads the source IP (Cedar builds an `ip` value for it).
    let mut office = tenant.clone();
    office.policies = Some(format!(
        "{}\n@id(\"office_only\")\n@notice(\"Passwordless works from the office network only.\")\n\
         forbid(principal, action == Passkey::Action::\"bypass_mfa\", resource)\n  \
         unless {{ context has source_ip && context.source_ip.isInRange(ip(\"192.0.2.0/24\")) }};",
        default_policies(&tenant)
    ));
    let used = AuthenticatorFacts {
        id: "credential".into(),
        ..key.clone()
    };
    decide(&office, &subject, &Question::BypassMfa(&used), &facts).unwrap();
    c.bench_function(
        "policy decision: bypass_mfa, a set reading source_ip",
        |b| {
            b.iter(|| {
                decide(
                    &office,
                    &subject,
                    black_box(&Question::BypassMfa(&used)),
                    &facts,
                )
                .unwrap()
            })
        },
    );
    let text = default_policies(&tenant);
    c.bench_function("policy first parse: default set", |b| {
        b.iter(|| black_box(&text).parse::<cedar_policy::PolicySet>().unwrap())
    });
}

criterion_group!(benches, decisions);
criterion_main!(benches);
