use super::*;

fn tenant() -> Tenant {
    Tenant::new("t", "localhost", vec!["http://localhost".into()], 0)
}

fn subject(tenant: &Tenant, authenticators: &[MethodType]) -> Subject {
    Subject {
        tenant: tenant.tenant_id,
        user: UserId::new_random(),
        authenticators: authenticators.to_vec(),
        has_backup_codes: Some(true),
        groups: None,
    }
}

fn ask(tenant: &Tenant, subject: &Subject, question: Question<'_>, facts: &Facts) -> Decision {
    decide(tenant, subject, &question, facts).unwrap()
}

const KEY: MethodType = MethodType::WebauthnFido;
const PASSKEY: MethodType = MethodType::WebauthnPasskey;

#[test]
fn the_schema_parses_and_default_sets_validate() {
    assert!(engine::schema().is_ok());
    let mut t = tenant();
    for (min, required) in [
        (0, vec![]),
        (1, vec![]),
        (3, vec![KEY]),
        (2, vec![PASSKEY, KEY]),
    ] {
        t.min_authenticators = min;
        t.required_methods = required;
        let text = default_policies(&t);
        assert_eq!(validate_policies(&text), Ok(()), "{text}");
    }
}

/// The MFA rule before policies (mfa::decide of the earlier code), for comparison.
fn before(t: &Tenant, methods: &[MethodType]) -> (bool, Option<MethodType>) {
    let missing = t.required_methods.iter().find(|m| !methods.contains(m));
    (
        missing.is_none() && methods.len() >= t.min_authenticators as usize,
        missing.copied(),
    )
}

#[test]
fn the_default_set_reproduces_the_mfa_settings() {
    let mut t = tenant();
    let users: [&[MethodType]; 5] = [&[], &[KEY], &[PASSKEY], &[KEY, PASSKEY], &[KEY, KEY, KEY]];
    for (min, required) in [(0, vec![]), (1, vec![]), (2, vec![KEY]), (3, vec![PASSKEY])] {
        t.min_authenticators = min;
        t.required_methods = required;
        for methods in users {
            let s = subject(&t, methods);
            let full = ask(&t, &s, Question::FullAccess, &Facts::default());
            let waived = |m| ask(&t, &s, Question::WaiveMethod(m), &Facts::default()).allowed;
            let missing = t
                .required_methods
                .iter()
                .copied()
                .find(|m| !methods.contains(m) && !waived(*m));
            let (was_full, was_missing) = before(&t, methods);
            assert_eq!(missing, was_missing, "min {min} {methods:?}");
            assert_eq!(full.allowed && missing.is_none(), was_full, "{methods:?}");
        }
    }
}

#[test]
fn denials_carry_the_notices_of_their_forbids() {
    let mut t = tenant();
    t.min_authenticators = 2;
    t.required_methods = vec![KEY];
    let s = subject(&t, &[PASSKEY]);
    let full = ask(&t, &s, Question::FullAccess, &Facts::default());
    assert_eq!(
        full,
        Decision {
            allowed: false,
            notices: vec!["Register at least 2 authenticators for full access.".into()]
        }
    );
    let waive = ask(&t, &s, Question::WaiveMethod(KEY), &Facts::default());
    assert!(!waive.allowed);
    assert_eq!(
        waive.notices,
        vec!["This tenant requires a security key (webauthn_fido).".to_owned()]
    );
    let other = ask(&t, &s, Question::WaiveMethod(PASSKEY), &Facts::default());
    assert!(other.allowed);
}

#[test]
fn sensitive_changes_need_a_recent_login_by_default() {
    let t = tenant();
    let s = subject(&t, &[KEY]);
    let key = AuthenticatorFacts::planned(KEY);
    let recent = Facts {
        auth_age_secs: Some(600),
        ..Facts::default()
    };
    let stale = Facts {
        auth_age_secs: Some(601),
        ..Facts::default()
    };
    assert!(ask(&t, &s, Question::AddAuthenticator(&key), &recent).allowed);
    assert!(ask(&t, &s, Question::RegenerateBackupCodes, &recent).allowed);
    let denied = ask(&t, &s, Question::AddAuthenticator(&key), &stale);
    assert!(!denied.allowed);
    assert_eq!(
        denied.notices,
        vec!["Adding an authenticator needs a sign-in within the last 600 seconds.".to_owned()]
    );
    let denied = ask(
        &t,
        &s,
        Question::DeleteAuthenticator(&key),
        &Facts::default(),
    );
    assert_eq!(
        denied.notices,
        vec!["This change needs a sign-in within the last 600 seconds.".to_owned()]
    );
    // The first enrollment and enrollment grants are not held to the window.
    let first = subject(&t, &[]);
    assert!(ask(&t, &first, Question::AddAuthenticator(&key), &stale).allowed);
    let grant = Facts {
        enrollment_grant: Some(true),
        ..Facts::default()
    };
    assert!(ask(&t, &s, Question::AddAuthenticator(&key), &grant).allowed);
}

#[test]
fn notices_are_sorted_deduplicated_and_never_empty() {
    let mut t = tenant();
    t.policies = Some(
        r#"
        @notice("b: allowed") permit(principal, action, resource);
        @notice("a: allowed") permit(principal, action, resource);
        @notice("a: allowed") permit(principal, action == Passkey::Action::"full_access", resource);
        @notice("  ") permit(principal, action, resource);
        permit(principal, action, resource);
        "#
        .into(),
    );
    let s = subject(&t, &[KEY]);
    let allowed = ask(&t, &s, Question::FullAccess, &Facts::default());
    assert_eq!(
        allowed,
        Decision {
            allowed: true,
            notices: vec!["a: allowed".into(), "b: allowed".into()]
        }
    );
}

#[test]
fn a_default_deny_has_no_notice_of_its_own() {
    let mut t = tenant();
    t.policies = Some(
        r#"@notice("only for keys")
        permit(principal, action, resource) when { principal.security_key_count > 0 };"#
            .into(),
    );
    let s = subject(&t, &[PASSKEY]);
    let denied = ask(&t, &s, Question::FullAccess, &Facts::default());
    assert_eq!(
        denied,
        Decision {
            allowed: false,
            notices: vec![]
        }
    );
}

#[test]
fn an_erroring_forbid_never_turns_a_deny_into_an_allow() {
    // Reads the optional `groups` without `has`: the validator refuses it, so it is built
    // here without validation, as a set stored before validation or by hand would be.
    let text = r#"
        permit(principal, action, resource);
        @notice("admins need a security key")
        forbid(principal, action == Passkey::Action::"full_access", resource)
          when { principal.groups.contains("admins") && principal.security_key_count == 0 };
    "#;
    assert!(validate_policies(text).is_err());
    let mut t = tenant();
    t.policies = Some(text.into());
    let s = subject(&t, &[PASSKEY]);
    let denied = ask(&t, &s, Question::FullAccess, &Facts::default());
    assert_eq!(
        denied,
        Decision {
            allowed: false,
            notices: vec!["admins need a security key".into()]
        }
    );
    // With the attribute present, it evaluates normally.
    let mut admin = subject(&t, &[KEY]);
    admin.groups = Some(vec!["admins".into()]);
    assert!(ask(&t, &admin, Question::FullAccess, &Facts::default()).allowed);
}

#[test]
fn an_erroring_permit_is_skipped_and_allows_nothing() {
    let mut t = tenant();
    t.policies = Some(
        r#"@notice("trusted devices") permit(principal, action, resource)
        when { context.device_trusted };"#
            .into(),
    );
    let s = subject(&t, &[PASSKEY]);
    let passkey = AuthenticatorFacts::planned(PASSKEY);
    let denied = ask(&t, &s, Question::BypassMfa(&passkey), &Facts::default());
    assert!(!denied.allowed);
    let trusted = Facts {
        device_trusted: Some(true),
        ..Facts::default()
    };
    let allowed = ask(&t, &s, Question::BypassMfa(&passkey), &trusted);
    assert_eq!(allowed.notices, vec!["trusted devices".to_owned()]);
}

#[test]
fn validation_reports_the_validators_messages() {
    let errors = validate_policies(
        r#"@id("guardless") permit(principal, action == Passkey::Action::"register", resource)
        when { resource.aaguid == "x" };"#,
    )
    .unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("guardless"), "{errors:?}");
    assert!(errors[0].contains("aaguid"), "{errors:?}");
    let errors =
        validate_policies(r#"permit(principal, action == Passkey::Action::"fly", resource);"#)
            .unwrap_err();
    assert!(errors[0].contains("fly"), "{errors:?}");
    assert!(!validate_policies("permit(principal, action, resource").unwrap_err()[0].is_empty());
    assert!(validate_policies(&"x".repeat(MAX_POLICY_BYTES + 1)).is_err());
    assert_eq!(
        validate_policies(
            r#"forbid(principal, action == Passkey::Action::"register", resource)
            when { resource has aaguid && resource.aaguid == "00000000-0000-0000-0000-000000000001" };"#
        ),
        Ok(())
    );
}

#[test]
fn a_changed_set_is_parsed_again() {
    let mut t = tenant();
    let s = subject(&t, &[PASSKEY]);
    t.policies = Some("permit(principal, action, resource);".into());
    assert!(ask(&t, &s, Question::FullAccess, &Facts::default()).allowed);
    t.policies = Some("forbid(principal, action, resource);".into());
    assert!(!ask(&t, &s, Question::FullAccess, &Facts::default()).allowed);
    t.policies = Some("permit(principal, action".into());
    assert!(matches!(
        decide(&t, &s, &Question::FullAccess, &Facts::default()),
        Err(PolicyError::Parse(_))
    ));
}

#[test]
fn a_blocked_aaguid_is_refused_at_registration() {
    let blocked = Uuid::from_u128(0x1234);
    let mut t = tenant();
    t.policies = Some(format!(
        r#"permit(principal, action, resource);
        @notice("This authenticator model is not allowed.")
        forbid(principal, action == Passkey::Action::"register", resource)
          when {{ context has aaguid && context.aaguid == "{blocked}" }};"#
    ));
    assert_eq!(validate_policies(t.policies.as_deref().unwrap()), Ok(()));
    let s = subject(&t, &[]);
    let mut key = AuthenticatorFacts::planned(KEY);
    assert!(ask(&t, &s, Question::Register(&key), &Facts::default()).allowed);
    key.aaguid = Some(blocked);
    let denied = ask(&t, &s, Question::Register(&key), &Facts::default());
    assert_eq!(
        denied.notices,
        vec!["This authenticator model is not allowed.".to_owned()]
    );
}

#[test]
fn sample_requests_evaluate_without_storing() {
    let t = tenant();
    let request: SampleRequest = serde_json::from_value(serde_json::json!({
        "action": "delete_authenticator",
        "user": { "authenticators": ["webauthn_fido"] },
        "authenticator": { "method_type": "webauthn_fido" },
        "context": { "auth_age_secs": 9000, "source_ip": "192.0.2.1" }
    }))
    .unwrap();
    let decision = request
        .evaluate(t.tenant_id, &default_policies(&t))
        .unwrap();
    assert!(!decision.allowed);
    let bad: SampleRequest =
        serde_json::from_value(serde_json::json!({ "action": "register" })).unwrap();
    assert!(bad
        .evaluate(t.tenant_id, "")
        .unwrap_err()
        .contains("authenticator"));
}

fn readme_section() -> &'static str {
    let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"));
    let start = readme
        .find("### Tenant policies (Cedar)")
        .expect("a policy section");
    let rest = &readme[start..];
    &rest[..rest.find("\n## ").unwrap_or(rest.len())]
}

/// The fenced blocks of `lang` in the README's policy section.
fn blocks(lang: &str) -> Vec<&'static str> {
    let fence = format!("```{lang}\n");
    readme_section()
        .split(fence.as_str())
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .collect()
}

#[test]
fn the_readme_shows_the_shipped_schema_and_default_set() {
    assert_eq!(blocks("cedarschema"), vec![SCHEMA]);
    let cedar = blocks("cedar");
    assert_eq!(
        cedar.first().copied(),
        Some(default_policies(&tenant()).as_str())
    );
}

#[test]
fn the_readme_examples_validate_and_decide_as_described() {
    let cedar = blocks("cedar");
    assert_eq!(cedar.len(), 4, "the default set and three examples");
    let default = default_policies(&tenant());
    let with = |example: &str| format!("{default}\n{example}");
    for example in &cedar[1..] {
        assert_eq!(validate_policies(&with(example)), Ok(()), "{example}");
    }
    let t = tenant();
    // Admins without a security key must enroll one.
    let admin: SampleRequest = serde_json::from_value(serde_json::json!({
        "action": "waive_method",
        "method_type": "webauthn_fido",
        "user": { "authenticators": ["webauthn_passkey"], "groups": ["admins"] }
    }))
    .unwrap();
    let refused = admin.evaluate(t.tenant_id, &with(cedar[1])).unwrap();
    assert_eq!(
        refused.notices,
        vec!["Administrators must use a security key.".to_owned()]
    );
    let mut staff = admin.clone();
    staff.user.groups = Some(vec!["staff".into()]);
    assert!(
        staff
            .evaluate(t.tenant_id, &with(cedar[1]))
            .unwrap()
            .allowed
    );
    // Passwordless only from trusted devices.
    let mut login: SampleRequest = serde_json::from_value(serde_json::json!({
        "action": "bypass_mfa",
        "user": { "authenticators": ["webauthn_passkey"] },
        "authenticator": { "method_type": "webauthn_passkey", "user_verified": true },
        "context": { "uv": true }
    }))
    .unwrap();
    let refused = login.evaluate(t.tenant_id, &with(cedar[3])).unwrap();
    assert!(!refused.allowed);
    login.context.device_trusted = Some(true);
    assert!(
        login
            .evaluate(t.tenant_id, &with(cedar[3]))
            .unwrap()
            .allowed
    );
}

#[test]
fn notices_name_the_authenticator_model() {
    let known = Uuid::parse_str("ee882879-721c-4913-9775-3dfcce97072a").unwrap();
    let model = authenticators::lookup(&known).map(|m| m.name);
    let mut t = tenant();
    t.policies = Some(
        r#"permit(principal, action, resource);
        @notice("{authenticator} is not allowed.")
        forbid(principal, action == Passkey::Action::"register", resource)
          when { resource has aaguid };"#
            .into(),
    );
    let s = subject(&t, &[]);
    let mut key = AuthenticatorFacts::planned(KEY);
    key.aaguid = Some(known);
    let denied = ask(&t, &s, Question::Register(&key), &Facts::default());
    assert_eq!(model, Some("YubiKey 5 Series"));
    assert_eq!(
        denied.notices,
        vec!["YubiKey 5 Series is not allowed.".to_owned()]
    );
    key.aaguid = Some(Uuid::nil());
    let denied = ask(&t, &s, Question::Register(&key), &Facts::default());
    assert_eq!(
        denied.notices,
        vec!["this authenticator is not allowed.".to_owned()]
    );
}

#[test]
fn passwordless_can_be_limited_to_trusted_devices() {
    let mut t = tenant();
    t.policies = Some(format!(
        r#"{}
        @notice("Passwordless sign-in works only on a trusted device.")
        forbid(principal, action == Passkey::Action::"bypass_mfa", resource)
          unless {{ context has device_trusted && context.device_trusted }};"#,
        default_policies(&t)
    ));
    let used = crate::store::CredentialRecord {
        tenant_user: String::new(),
        credential_id: crate::ids::CredentialId::from_bytes(vec![1]),
        tenant_id: t.tenant_id,
        user_id: UserId::new_random(),
        method_type: PASSKEY,
        device_name: String::new(),
        aaguid: Uuid::nil(),
        backup_eligible: true,
        backup_state: true,
        transports: vec![],
        sign_count: 0,
        registration_sign_count: 0,
        counter_regressions: 0,
        user_verified: true,
        created_at: 0,
        last_used_at: None,
        use_count: 0,
        webauthn_credential: String::new(),
    };
    let trusted = Facts {
        uv: Some(true),
        device_trusted: Some(true),
        ..Facts::default()
    };
    let all = &UserFacts::new(std::slice::from_ref(&used), &[]);
    assert!(may_bypass_mfa(&t, all, &used, &trusted).unwrap().allowed);
    let unknown = Facts {
        device_trusted: Some(false),
        ..trusted
    };
    let denied = may_bypass_mfa(&t, all, &used, &unknown).unwrap();
    assert_eq!(
        denied,
        Decision {
            allowed: false,
            notices: vec!["Passwordless sign-in works only on a trusted device.".into()]
        }
    );
    // The default set lets every passwordless login stand alone, as before policies.
    let plain = tenant();
    assert!(
        may_bypass_mfa(&plain, all, &used, &unknown)
            .unwrap()
            .allowed
    );
}

#[test]
fn the_cache_follows_a_change_of_settings_or_of_the_stored_set() {
    let mut t = tenant();
    let one = subject(&t, &[PASSKEY]);
    let full = |t: &Tenant| ask(t, &one, Question::FullAccess, &Facts::default()).allowed;
    assert!(full(&t));
    // The default set of the same tenant, rendered from changed settings: parsed anew.
    t.min_authenticators = 2;
    assert!(!full(&t));
    t.min_authenticators = 1;
    assert!(full(&t));
    // A stored set replaces the default one, and a changed stored set the old one.
    t.policies = Some(format!(
        "{}\nforbid(principal, action == Passkey::Action::\"full_access\", resource);",
        default_policies(&t)
    ));
    assert!(!full(&t));
    t.policies = Some(default_policies(&t));
    assert!(full(&t));
    // Back to the default set with the settings the stored set was rendered from.
    t.policies = None;
    assert!(full(&t));
}
