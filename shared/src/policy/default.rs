//! The built-in policy set: today's tenant settings (`min_authenticators`, `required_methods`,
//! `reauthentication_window_secs`) written as Cedar, so a tenant without its own set behaves
//! exactly as before policies existed. This is the migration: a stored tenant without
//! `policies` reads its rules from here.

use std::fmt::Write;

use crate::tenant::{MethodType, Tenant};

fn human(method: MethodType) -> &'static str {
    match method {
        MethodType::WebauthnPasskey => "passkey",
        MethodType::WebauthnFido => "security key",
    }
}

/// The default policy set of `tenant`, rendered from its settings.
pub fn default_policies(tenant: &Tenant) -> String {
    let mut out = String::with_capacity(2048);
    out.push_str(
        "// Built-in policies, rendered from the tenant's settings.\n\
         @id(\"register\")\n\
         permit(principal, action == Passkey::Action::\"register\", resource);\n\n\
         @id(\"bypass_mfa\")\n\
         permit(principal, action == Passkey::Action::\"bypass_mfa\", resource);\n\n",
    );
    full_access(&mut out, tenant.min_authenticators);
    waive_method(&mut out, &tenant.required_methods);
    recent_login(&mut out, tenant.reauthentication_window_secs);
    out
}

/// `min_authenticators`: fewer gives a token limited to enrollment.
fn full_access(out: &mut String, min: u32) {
    out.push_str(
        "@id(\"full_access\")\n\
         permit(principal, action == Passkey::Action::\"full_access\", resource);\n\n",
    );
    if min == 0 {
        return;
    }
    let noun = if min == 1 {
        "authenticator"
    } else {
        "authenticators"
    };
    let _ = write!(
        out,
        "@id(\"min_authenticators\")\n\
         @notice(\"Register at least {min} {noun} for full access.\")\n\
         forbid(principal, action == Passkey::Action::\"full_access\", resource)\n  \
         when {{ principal.authenticator_count < {min} }};\n\n"
    );
}

/// `required_methods`: a missing one gives an enrollment grant for it.
fn waive_method(out: &mut String, required: &[MethodType]) {
    out.push_str(
        "@id(\"waive_method\")\n\
         permit(principal, action == Passkey::Action::\"waive_method\", resource);\n\n",
    );
    for method in required {
        let _ = write!(
            out,
            "@id(\"require_{method}\")\n\
             @notice(\"This tenant requires a {human} ({method}).\")\n\
             forbid(principal, action == Passkey::Action::\"waive_method\", resource)\n  \
             when {{ context has method_type && context.method_type == \"{method}\" }};\n\n",
            human = human(*method),
        );
    }
}

/// `reauthentication_window_secs`: adding an authenticator to an account that has one,
/// deleting one and regenerating backup codes need a login that recent. An enrollment grant
/// is the proof of a login that just happened.
fn recent_login(out: &mut String, window: u32) {
    let _ = write!(
        out,
        "@id(\"sensitive_changes\")\n\
         permit(principal, action in [Passkey::Action::\"add_authenticator\", \
         Passkey::Action::\"delete_authenticator\", \
         Passkey::Action::\"regenerate_backup_codes\"], resource);\n\n\
         @id(\"reauthentication_window_add\")\n\
         @notice(\"Adding an authenticator needs a sign-in within the last {window} seconds.\")\n\
         forbid(principal, action == Passkey::Action::\"add_authenticator\", resource)\n  \
         unless {{ principal.authenticator_count == 0\n    \
         || (context has enrollment_grant && context.enrollment_grant)\n    \
         || (context has auth_age_secs && context.auth_age_secs <= {window}) }};\n\n\
         @id(\"reauthentication_window\")\n\
         @notice(\"This change needs a sign-in within the last {window} seconds.\")\n\
         forbid(principal, action in [Passkey::Action::\"delete_authenticator\", \
         Passkey::Action::\"regenerate_backup_codes\"], resource)\n  \
         unless {{ (context has enrollment_grant && context.enrollment_grant)\n    \
         || (context has auth_age_secs && context.auth_age_secs <= {window}) }};\n"
    );
}
